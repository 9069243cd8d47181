"""Secrets in an export (issue 22, round two): a password or token written in the community
config, in any form SQLAlchemy, libpq or a web service reads it, never reaches the archive
`twoi2c-hub export` writes; every member of the archive is searched for it. What is taken
out is listed, and what is not a secret (a user name, a host, libpq's `passfile` and
`sslkey` paths) stays."""

import json
import logging
import tarfile
from urllib.parse import quote, unquote

import pytest
import yaml
from fuzzing import fuzz
from hypothesis import given
from hypothesis import strategies as st
from whole_history import hub_database

from twoi2c_hub.accounting.db import upgrade
from twoi2c_hub.cli import main
from twoi2c_hub.replicate.secrets import redacted

# the two ends of every secret: any part of one that reaches the archive shows one of them
# (letters: never percent-encoded, never escaped in YAML or JSON)
START, END = "Zq7", "9qZ"
SECRET = f"{START}s3cr3tValue{END}"
ENCODED = "".join(f"%{b:02X}" for b in SECRET.encode())  # every character percent-encoded
HOST = "db.example.org"
DB = f"postgresql+psycopg://hub@{HOST}/usage"

# name: (setting, value with the secret, the value exported, or None: taken out whole)
FORMS = {
    "user-info": ("usage.database_url", f"postgresql+psycopg://hub:{SECRET}@{HOST}/usage", DB),
    "percent-encoded-user-info": ("usage.database_url", f"postgresql+psycopg://hub:{ENCODED}@{HOST}/usage", DB),
    "user-info-and-query": (
        "usage.database_url",
        f"postgresql+psycopg://hub:{SECRET}@{HOST}/usage?password={SECRET}",
        DB,
    ),
    "query-password": ("usage.database_url", f"{DB}?password={SECRET}", DB),
    "query-sslpassword": (
        "usage.database_url",
        f"{DB}?sslmode=verify-full&sslpassword={SECRET}",
        f"{DB}?sslmode=verify-full",
    ),
    "query-key-in-any-case": ("usage.database_url", f"{DB}?PassWord={SECRET}", DB),
    "query-key-repeated": ("usage.database_url", f"{DB}?password=first&password={SECRET}", DB),
    "query-key-percent-encoded": ("usage.database_url", f"{DB}?pass%77ord={SECRET}", DB),
    "query-value-percent-encoded": ("usage.database_url", f"{DB}?password={ENCODED}", DB),
    "query-mysql-passwd": (
        "usage.database_url",
        f"mysql+pymysql://hub@{HOST}/usage?passwd={SECRET}",
        f"mysql+pymysql://hub@{HOST}/usage",
    ),
    "query-token-and-secret": ("usage.database_url", f"{DB}?auth_token={SECRET}&client_secret={SECRET}", DB),
    "libpq-string-as-database-name": (
        "usage.database_url",
        f"postgresql+psycopg://hub@{HOST}/host%3D{HOST}%20password%3D{SECRET}",
        None,
    ),
    "libpq-string-as-dbname-option": (
        "usage.database_url",
        f"postgresql+psycopg://hub@{HOST}/?dbname=user%3Dhub%20password%3D{SECRET}",
        None,
    ),
    "libpq-string-in-options": ("usage.database_url", f"{DB}?options=-c%20password%3D{SECRET}", None),
    "libpq-key-value-string": ("usage.database_url", f"host={HOST} user=hub password='{SECRET}' dbname=usage", None),
    "malformed-port": ("usage.database_url", f"postgresql+psycopg://hub:{SECRET}@{HOST}:port/usage", None),
    "at-sign-not-encoded": ("usage.database_url", f"postgresql+psycopg://hub:{START}@{END}@{HOST}/usage", None),
    "webhook-path-token": ("budgets.alerts.webhook.url", f"https://hooks.slack.com/services/T0/B0/{SECRET}", None),
    "webhook-token-in-query": (
        "home_storage.prometheus_url",
        f"https://prometheus.example.org/?token={SECRET}",
        "https://prometheus.example.org/",
    ),
    "oidc-issuer-token": (
        "auth.oidc.discovery_url",
        f"https://idp.example.org/.well-known/openid-configuration?token={SECRET}&x=1",
        "https://idp.example.org/.well-known/openid-configuration?x=1",
    ),
    "teams-signature": (
        "hub.support_url",
        f"https://prod.logic.azure.com/workflows/w/invoke?api-version=1&sig={SECRET}",
        "https://prod.logic.azure.com/workflows/w/invoke?api-version=1",
    ),
    "user-info-in-a-url": (
        "home_storage.prometheus_url",
        f"https://admin:{SECRET}@prometheus.example.org/",
        "https://prometheus.example.org/",
    ),
    "token-as-the-user": ("hub.url", f"https://{SECRET}@github.com/org/repo", "https://github.com/org/repo"),
    "token-in-a-fragment": ("hub.url", f"https://hub.example.org/#access_token={SECRET}", "https://hub.example.org/"),
    "url-in-a-list": ("auth.settings.extra_urls", [f"https://u:{SECRET}@x.example.org/"], ["https://x.example.org/"]),
    "url-as-a-key": (
        "auth.cilogon.idps",
        {f"https://u:{SECRET}@idp.example.org/": {"default": True}},
        {"https://idp.example.org/": {"default": True}},
    ),
    "secret-named-setting": ("auth.settings.client_secret", SECRET, None),
    "secret-named-environment-variable": ("auth.settings.env.GITHUB_TOKEN", SECRET, None),
}
# not secrets: exported as they are, nothing listed
KEPT = {
    "libpq-paths": ("usage.database_url", f"{DB}?passfile=/etc/pgpass&sslkey=/etc/hub.key&sslmode=require"),
    "azure-user-name": ("usage.database_url", f"postgresql+psycopg://hub%40server@{HOST}/usage"),
    "malformed-without-secret": ("usage.database_url", f"postgresql+psycopg://{HOST}:port/usage"),
    "a-link": ("hub.url", "https://hub.example.org/hub/spawn?profile=gpu&repo=https://github.com/org/repo"),
}


def config_with(setting: str, value) -> dict:
    """A community config with `value` at the dotted `setting`."""
    config = {"hub": {"name": "H"}, "auth": {"provider": "external", "class": "dummy", "settings": {}}}
    node = config
    *parents, last = setting.split(".")
    for name in parents:
        node = node.setdefault(name, {})
    node[last] = value
    return config


def value_at(config: dict, setting: str):
    node = config
    for name in setting.split("."):
        if not isinstance(node, dict) or name not in node:
            return None
        node = node[name]
    return node


def export(tmp_path, config: dict, capsys, *extra: str) -> tuple[int, dict[str, bytes], str]:
    """Runs `twoi2c-hub export` on an accounting database (SQLite): (status, the archive's
    members, stdout and stderr)."""
    path = tmp_path / "community.yaml"
    path.write_text(yaml.safe_dump(config))
    url = f"sqlite:///{tmp_path / 'usage.sqlite'}"
    upgrade(url)
    out = tmp_path / "hub.tar"
    status = main(["export", "--config", str(path), "--url", url, "--out", str(out), *extra])
    printed = "".join(capsys.readouterr())
    if status != 0:
        return status, {}, printed
    with tarfile.open(out) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    return status, members, printed


def assert_nowhere(members: dict[str, bytes], *secrets: str) -> None:
    """No secret in any member, as it is or percent-decoded (once or twice)."""
    assert members
    for name, data in members.items():
        text = data.decode("utf-8", "replace")
        for form in (text, unquote(text), unquote(unquote(text))):
            for secret in secrets:
                assert secret not in form, f"{secret!r} in {name}"


@pytest.mark.parametrize("form", FORMS)
def test_a_secret_in_the_config_reaches_no_member_of_the_archive(form, tmp_path, capsys):
    setting, value, expected = FORMS[form]
    status, members, printed = export(tmp_path, config_with(setting, value), capsys)
    assert status == 0, printed
    assert "Traceback" not in printed
    assert_nowhere(members, SECRET, START, END)
    exported = yaml.safe_load(members["community.yaml"])
    assert value_at(exported, setting) == expected
    assert setting in printed  # the new operator is told what to set again
    manifest = json.loads(members["manifest.json"])
    assert any(s["setting"].startswith(setting) for s in manifest["secrets"])


@pytest.mark.parametrize("form", KEPT)
def test_what_is_not_a_secret_is_exported_as_it_is(form, tmp_path, capsys):
    setting, value = KEPT[form]
    status, members, printed = export(tmp_path, config_with(setting, value), capsys)
    assert status == 0, printed
    assert value_at(yaml.safe_load(members["community.yaml"]), setting) == value
    assert json.loads(members["manifest.json"])["secrets"] == []


@pytest.fixture
def logging_kept():
    """JupyterHub's migrations configure logging to the stderr of the moment (a test's
    capture, closed after it): put it back after the test."""
    loggers = [logging.getLogger(name) for name in ("", "sqlalchemy.engine", "alembic")]
    saved = [(logger, logger.handlers[:], logger.level) for logger in loggers]
    yield
    for logger, handlers, level in saved:
        logger.handlers[:] = handlers
        logger.setLevel(level)


def test_neither_the_database_urls_nor_the_hubs_tokens_are_in_the_archive(tmp_path, capsys, logging_kept):
    """The manifest names the database's kind, never its URL; the hub's people travel
    without their API tokens, cookies or auth state."""
    from jupyterhub import orm

    hub_db = f"sqlite:///{tmp_path / f'hub-{SECRET}.sqlite'}"
    hub_database(hub_db, [("ann", True, ["staff"]), ("bob", False, [])])
    db = orm.new_session_factory(hub_db)()
    bob = db.query(orm.User).filter_by(name="bob").one()
    bob.cookie_id = f"{START}cookie{END}"
    bob.encrypted_auth_state = f"{START}auth-state{END}".encode()
    token = f"{START}token{END}"
    db.add(orm.OAuthClient(identifier="jupyterhub"))  # whose tokens the API tokens are
    orm.APIToken.new(token=token, user=bob)
    db.commit()
    db.close()
    status, members, printed = export(
        tmp_path, config_with("hub.url", "https://hub.example.org/"), capsys, "--hub-db", hub_db
    )
    assert status == 0, printed
    assert_nowhere(members, SECRET, START, END, token[:4] + "token")
    assert str(tmp_path) not in members["manifest.json"].decode()
    users = [json.loads(line) for line in members["hub/users.jsonl"].splitlines()]
    assert [set(u) for u in users] == [{"name", "admin", "created", "last_activity", "groups"}] * 2


@pytest.mark.parametrize("where", ["--url", "usage.database_url"])
def test_a_database_url_sqlalchemy_cannot_read_is_one_line_without_the_password(where, tmp_path, capsys):
    bad = f"postgresql+psycopg://hub:{SECRET}@{HOST}:port/usage"
    config = tmp_path / "community.yaml"
    config.write_text(
        yaml.safe_dump({"hub": {"name": "H"}, "profiles": [{"display_name": "A"}], "usage": {"database_url": bad}})
    )
    command = ["export", "--out", str(tmp_path / "a.tar")]
    command += ["--url", bad] if where == "--url" else ["--config", str(config)]
    status = main(command)
    err = capsys.readouterr().err
    assert status != 0 and len(err.strip().splitlines()) == 1, err
    assert "not a database URL" in err and SECRET not in err and "Traceback" not in err
    assert not (tmp_path / "a.tar").exists()


def test_a_config_that_is_not_yaml_is_one_line(tmp_path, capsys):
    config = tmp_path / "community.yaml"
    config.write_text(f"usage: {{database_url: postgresql://hub:{SECRET}@{HOST}/usage\n")
    url = f"sqlite:///{tmp_path / 'usage.sqlite'}"  # the config is read before the database
    status = main(["export", "--config", str(config), "--url", url, "--out", str(tmp_path / "a.tar")])
    err = capsys.readouterr().err
    assert status != 0 and len(err.strip().splitlines()) == 1 and "not YAML" in err, err
    assert not (tmp_path / "a.tar").exists()


# --- any URL with a secret in the user-info or a query parameter -----------------------------

secret_text = st.builds(
    lambda middle: START + middle + END, st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
)
secret_key = st.builds(
    lambda key, flips: "".join(c.upper() if i in flips else c for i, c in enumerate(key)),
    st.sampled_from(["password", "sslpassword", "passwd", "client_secret", "token", "api_token", "secret", "pwd"]),
    st.sets(st.integers(0, 12)),
)
plain = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)


@st.composite
def url_with_a_secret(draw, database: bool) -> str:
    secret = draw(secret_text)
    encode = draw(st.booleans()) or not database  # a web URL is a valid URL; SQLAlchemy reads more
    quoted = quote(secret, safe="") if encode else secret
    params = [f"{draw(plain)}={draw(plain)}" for _ in range(draw(st.integers(0, 2)))]
    where = draw(st.sampled_from(["user-info", "query", "both", "query-repeated"]))
    if where != "user-info":
        params.insert(draw(st.integers(0, len(params))), f"{draw(secret_key)}={quote(secret, safe='')}")
    if where == "query-repeated":
        params.append(f"{draw(secret_key)}={quote(secret, safe='')}")
    user = draw(plain) + (f":{quoted}" if where in ("user-info", "both") else "")
    scheme = draw(st.sampled_from(["postgresql", "postgresql+psycopg", "mysql+pymysql"])) if database else "https"
    query = ("?" + "&".join(params)) if params else ""
    return f"{scheme}://{user}@{draw(plain)}.example.org/{draw(plain)}{query}"


@fuzz(200)
@given(url_with_a_secret(database=True), url_with_a_secret(database=False))
def test_no_url_with_a_secret_in_the_user_info_or_the_query_keeps_it(database_url, web_url):
    config = {
        "usage": {"database_url": database_url},
        "home_storage": {"prometheus_url": web_url},
        "auth": {"oidc": {"discovery_url": web_url}},
    }
    text, needed = redacted(yaml.safe_dump(config))
    assert START not in text and END not in text
    assert {n["setting"] for n in needed} == {
        "usage.database_url",
        "home_storage.prometheus_url",
        "auth.oidc.discovery_url",
    }


def test_an_empty_database_is_refused_without_showing_its_password(postgres_server, tmp_path, capsys):
    """The refusal names the database, not its password (the test server trusts any)."""
    url = postgres_server.new_database().replace("postgres@", f"postgres:{SECRET}@")
    status = main(["export", "--url", url, "--out", str(tmp_path / "a.tar")])
    err = capsys.readouterr().err
    assert status != 0 and "no accounting database here" in err, err
    assert SECRET not in err and "***" in err
    assert not (tmp_path / "a.tar").exists()
