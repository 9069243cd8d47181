"""A hub's part in the fleet: each UTC day's people as keyed digests, never a name.

The people active each day are the same sets from the rollups as from the raw sessions;
the digests are checked against HMAC-SHA256 computed here, not through the package's own
`person_digest`; and the usage service gives them (`api/v1/people-digests`) only to hub
admins and readers of everyone's figures, only on a hub with a fleet secret."""

import asyncio
import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime

import pytest
import requests
import yaml
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port
from traitlets.config import Config
from usage_figures import NOW, T0, random_events, record_all

from twoi2c_hub import configure
from twoi2c_hub.accounting.activity import active_users, people_by_day, people_digests_by_day
from twoi2c_hub.accounting.db import make_engine, session_maker, upgrade
from twoi2c_hub.accounting.events import ServerStart, ServerStarted, ServerStopped
from twoi2c_hub.accounting.models import DAY_MS, HOUR_MS
from twoi2c_hub.accounting.recording import record
from twoi2c_hub.accounting.rollups import roll_up
from twoi2c_hub.config.loading import ConfigError, load_config
from twoi2c_hub.paths import demo_config
from twoi2c_hub.services.usage.apihandlers import PeopleDigestsAPI
from twoi2c_hub.services.usage.app import UsageService

SECRET_ENV = "TWOI2C_TEST_FLEET_SECRET"
D = T0 // DAY_MS  # 2024-10-04, an epoch day


def digest(secret: bytes, username: str) -> str:
    """HMAC-SHA256 of the UTF-8 name keyed with the secret, its first 128 bits in hex."""
    return hmac.new(secret, username.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'usage.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    with session_maker(engine)() as session:
        yield session
    engine.dispose()


def session(db, username, started_ms, stopped_ms=None, server_name=""):
    record(db, [ServerStarted(ServerStart(username=username, server_name=server_name, started_ms=started_ms))])
    if stopped_ms is not None:
        record(db, [ServerStopped(username, server_name, stopped_ms, "user", started_ms=started_ms)])
    db.commit()


# --- the people of each day --------------------------------------------------------------


def test_a_session_counts_on_every_day_it_overlaps_before_and_after_rollup(db):
    now = T0 + 3 * DAY_MS + 6 * HOUR_MS
    session(db, "ada", T0 + 23 * HOUR_MS, T0 + DAY_MS + HOUR_MS)  # across midnight
    session(db, "ben", T0 + 22 * HOUR_MS, T0 + DAY_MS)  # ends at midnight: not the next day
    session(db, "cy", T0 + 2 * DAY_MS + 10 * HOUR_MS, T0 + 2 * DAY_MS + 10 * HOUR_MS)  # ended as it began
    session(db, "dee", T0 + DAY_MS + 12 * HOUR_MS)  # still running: every day until now
    session(db, "eve", T0 - 5 * DAY_MS, T0 - 5 * DAY_MS + HOUR_MS)  # before the days asked for
    session(db, "ada", T0 + 2 * DAY_MS + HOUR_MS, T0 + 2 * DAY_MS + 2 * HOUR_MS, server_name="second")
    expected = {
        D: {"ada", "ben"},
        D + 1: {"ada", "dee"},
        D + 2: {"ada", "cy", "dee"},
        D + 3: {"dee"},
    }
    assert people_by_day(db, D - 1, D + 4, now) == expected
    roll_up(db, now_ms=T0 + 2 * DAY_MS)  # what closed before day 2
    assert people_by_day(db, D - 1, D + 4, now) == expected
    roll_up(db, now_ms=now)
    assert people_by_day(db, D - 1, D + 4, now) == expected
    # only the days asked for, however long a session
    assert people_by_day(db, D + 1, D + 1, now) == {D + 1: {"ada", "dee"}}
    assert people_by_day(db, D + 5, D + 9, now) == {}


@pytest.mark.parametrize("seed", [3, 8])
def test_the_people_of_each_day_are_those_of_the_raw_sessions(db, seed):
    events = random_events(seed=seed)
    record_all(db, events)

    def raw(day):
        a, b = day * DAY_MS, (day + 1) * DAY_MS
        return {
            e["start"].username
            for e in events
            if e["start"].started_ms < b
            and (e["stop"] if e["stop"] is not None else NOW) > a
            or a <= e["start"].started_ms < b
        }

    expected = {day: raw(day) for day in range(D - 2, D + 13) if raw(day)}
    counts = active_users(db, T0, T0 + 11 * DAY_MS, NOW)
    assert people_by_day(db, D - 2, D + 12, NOW) == expected
    roll_up(db, now_ms=T0 + 5 * DAY_MS)
    assert people_by_day(db, D - 2, D + 12, NOW) == expected
    assert active_users(db, T0, T0 + 11 * DAY_MS, NOW) == counts
    assert [c["daily"] for c in counts] == [len(expected.get(D + n, ())) for n in range(11)]


def test_each_days_digests_are_the_keyed_hmac_of_its_people_sorted(db):
    secret = secrets.token_bytes(32)
    session(db, "ada", T0 + 23 * HOUR_MS, T0 + DAY_MS + HOUR_MS)
    session(db, "Zoë", T0 + DAY_MS + 2 * HOUR_MS, T0 + DAY_MS + 3 * HOUR_MS)
    days = people_digests_by_day(db, D - 1, D + 3, NOW, secret)
    assert days == {
        "2024-10-04": [digest(secret, "ada")],
        "2024-10-05": sorted([digest(secret, "ada"), digest(secret, "Zoë")]),
    }
    assert "ada" not in str(days) and len(days["2024-10-04"][0]) == 32
    # another secret, other digests: the same names cannot be matched without it
    other = people_digests_by_day(db, D - 1, D + 3, NOW, secrets.token_bytes(32))
    assert set(other["2024-10-05"]).isdisjoint(days["2024-10-05"])


# --- the setting and the service's start -------------------------------------------------


def community_file(tmp_path, **usage) -> str:
    config = demo_config()
    config["culling"] = {"enabled": False}
    config["usage"] = usage
    path = tmp_path / "community.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_the_setting_names_an_environment_variable(tmp_path):
    assert load_config(community_file(tmp_path, fleet_secret_env=SECRET_ENV)).usage.fleet_secret_env == SECRET_ENV
    with pytest.raises(ConfigError) as refused:
        load_config(community_file(tmp_path, fleet_secret_env="1 FLEET-SECRET"))
    assert refused.value.errors == [
        "usage.fleet_secret_env: must be an environment variable's name (letters, digits and _, "
        "not starting with a digit), not '1 FLEET-SECRET'"
    ]


MAKE_ONE = "`openssl rand -hex 32`, the same on every hub of the fleet"


@pytest.mark.parametrize(
    "value, problem",
    [
        (
            None,
            f"set the environment variable {SECRET_ENV} to the fleet secret ({MAKE_ONE}), "
            "or remove fleet_secret_env if this hub is not part of a fleet",
        ),
        ("not-hex-at-all", f"${SECRET_ENV} is not a hex string; the fleet secret is written in hex ({MAKE_ONE})"),
        ("ab" * 16, f"${SECRET_ENV} holds 16 bytes; the fleet secret needs at least 32 ({MAKE_ONE})"),
    ],
)
def test_the_service_refuses_to_start_without_a_usable_secret(tmp_path, monkeypatch, caplog, value, problem):
    if value is None:
        monkeypatch.delenv(SECRET_ENV, raising=False)
    else:
        monkeypatch.setenv(SECRET_ENV, value)
    config = community_file(tmp_path, fleet_secret_env=SECRET_ENV)
    url = f"sqlite:///{tmp_path / 'usage.sqlite'}"
    with pytest.raises(ConfigError) as refused:
        UsageService(community_config=config, database_url=url)
    assert refused.value.errors == [f"usage.fleet_secret_env: {problem}"]
    assert UsageService.main(["--config", config, "--database-url", url]) == 1
    assert problem in caplog.text


def test_the_hub_passes_the_secret_to_the_usage_service_only_when_it_has_one(tmp_path, monkeypatch):
    def usage_environment(**usage):
        c = Config()
        configure(c, community_file(tmp_path, **usage))
        (usage_service,) = [s for s in c.JupyterHub.services if s["name"] == "usage"]
        return usage_service["environment"]

    monkeypatch.setenv(SECRET_ENV, "ab" * 32)
    assert usage_environment(fleet_secret_env=SECRET_ENV)[SECRET_ENV] == "ab" * 32
    assert SECRET_ENV not in usage_environment()  # not part of a fleet: nothing passed
    monkeypatch.delenv(SECRET_ENV)
    assert SECRET_ENV not in usage_environment(fleet_secret_env=SECRET_ENV)  # the service says what is missing


def test_a_secret_of_32_bytes_in_hex_is_the_key(tmp_path, monkeypatch):
    secret = secrets.token_bytes(32)
    monkeypatch.setenv(SECRET_ENV, secret.hex())
    config = community_file(tmp_path, fleet_secret_env=SECRET_ENV)
    service = UsageService(community_config=config, database_url=f"sqlite:///{tmp_path / 'usage.sqlite'}")
    assert service.fleet_secret == secret


# --- the endpoint, in the service alone (who is asking: patched in) -----------------------


async def ask(service, monkeypatch, user, **params) -> tuple[int, dict]:
    monkeypatch.setattr(PeopleDigestsAPI, "get_current_user", lambda handler: user)
    sock, port = bind_unused_port()
    server = HTTPServer(service.application())
    server.add_sockets([sock])
    try:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        url = f"http://127.0.0.1:{port}{service.prefix}api/v1/people-digests?{query}"
        response = await AsyncHTTPClient().fetch(url, raise_error=False)
        return response.code, json.loads(response.body)
    finally:
        server.stop()
        await asyncio.sleep(0)


ADMIN = {"name": "admin", "admin": True, "scopes": []}


async def test_a_hub_outside_a_fleet_answers_404_saying_what_to_set(tmp_path, monkeypatch):
    service = UsageService(community_config=community_file(tmp_path), database_url=f"sqlite:///{tmp_path / 'u.db'}")
    code, body = await ask(service, monkeypatch, ADMIN, window="7d")
    assert code == 404
    assert body["message"].startswith("This hub is not part of a fleet: set usage.fleet_secret_env")
    # a person who may not read everyone's is told that first
    code, body = await ask(service, monkeypatch, {"name": "bob", "admin": False, "scopes": []})
    assert code == 403


async def test_the_service_gives_digests_and_a_csv(tmp_path, monkeypatch):
    secret = secrets.token_bytes(32)
    monkeypatch.setenv(SECRET_ENV, secret.hex())
    url = f"sqlite:///{tmp_path / 'usage.sqlite'}"
    service = UsageService(community_config=community_file(tmp_path, fleet_secret_env=SECRET_ENV), database_url=url)
    with service.open_db() as db:
        session(db, "ada", ms("2026-11-01T23:00:00"), ms("2026-11-02T01:00:00"))
    code, body = await ask(service, monkeypatch, ADMIN, window="2026-10-31T00:00:00Z,2026-11-03T00:00:00Z")
    assert code == 200
    days = {"2026-11-01": [digest(secret, "ada")], "2026-11-02": [digest(secret, "ada")]}
    assert body == {"code": 200, "data": {"digest": "hmac-sha256-128", "days": days}}
    reader = {"name": "carol", "admin": False, "scopes": ["custom:usage:read-all"]}
    code, body = await ask(service, monkeypatch, reader, window="2026-11-02T00:00:00Z,2026-11-03T00:00:00Z")
    assert (code, body["data"]["days"]) == (200, {"2026-11-02": [digest(secret, "ada")]})


# --- the endpoint on a real hub --------------------------------------------------------------


def test_a_fleet_hub_gives_its_peoples_digests_to_admins_and_readers_only(hub_factory, tmp_path):
    secret = secrets.token_bytes(32)
    url = f"sqlite:///{tmp_path / 'fleet-usage.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    with session_maker(engine)() as db:
        session(db, "alice", ms("2026-11-01T23:00:00"), ms("2026-11-02T01:00:00"))
        session(db, "bob", ms("2026-11-02T09:00:00"), ms("2026-11-02T10:00:00"))
        session(db, "bob", ms("2026-11-04T09:00:00"), ms("2026-11-04T09:00:00"))
    engine.dispose()
    config = community_file(tmp_path, fleet_secret_env=SECRET_ENV, database_url=url, reconcile_interval=5)
    hub = hub_factory(config, "fleet-hub", environment={SECRET_ENV: secret.hex()})
    digests = f"{hub.url}/services/usage/api/v1/people-digests"
    hub.wait_for(lambda: requests.get(f"{hub.url}/services/usage/health", timeout=30).ok, what="the usage service")
    tokens = {}
    for name in ("admin", "alice", "bob"):
        hub.login(name)  # the demo authenticator gives groups at login: alice's researchers read everyone's
        tokens[name] = hub.user_token(name)

    def get(name, **params):
        headers = {"Authorization": f"token {tokens[name]}"} if name else {}
        return requests.get(digests, params=params, headers=headers, timeout=30)

    window = "2026-10-31T00:00:00Z,2026-11-06T00:00:00Z"
    expected = {
        "2026-11-01": [digest(secret, "alice")],
        "2026-11-02": sorted([digest(secret, "alice"), digest(secret, "bob")]),
        "2026-11-04": [digest(secret, "bob")],
    }
    for name in ("admin", "alice"):
        response = get(name, window=window)
        assert response.status_code == 200, response.text
        assert response.json() == {"code": 200, "data": {"digest": "hmac-sha256-128", "days": expected}}
        assert "alice" not in response.text and "bob" not in response.text
    for name in ("bob", None):
        response = get(name, window=window)
        assert response.status_code == 403 and response.json()["message"], name
    # at most 400 days, counted as the UTC days the window touches
    for too_long in ("401d", "2026-01-01T12:00:00Z,2027-02-05T12:00:00Z"):
        response = get("admin", window=too_long)
        assert response.status_code == 400, too_long
        assert response.json()["parameter"] == "window" and "400" in response.json()["message"]
    assert get("admin", window="2026-01-01T00:00:00Z,2027-02-05T00:00:00Z").status_code == 200
