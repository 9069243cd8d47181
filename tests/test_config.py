"""The community config: check-config messages, and what configure() sets."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from traitlets.config import Config

from twoi2c_hub import configure
from twoi2c_hub.config import ConfigError, load_config, parse_config
from twoi2c_hub.paths import examples_dir

EXAMPLE = examples_dir() / "demo-community.yaml"


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as failed:
        parse_config(textwrap.dedent(text))
    return failed.value.errors


def check_config(path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "twoi2c_hub.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
    )


def test_interfaces_are_filled_in_and_checked():
    config = parse_config(
        "hub: {name: X}\nspawner: {interfaces: [{name: lab}, {name: rstudio, images: ['*r-notebook*']}]}\n"
    )
    assert config.spawner.interface_list() == [
        {"name": "lab", "display_name": "JupyterLab", "url": "/lab", "images": []},
        {"name": "rstudio", "display_name": "RStudio", "url": "/rstudio", "images": ["*r-notebook*"]},
    ]
    assert errors_of("hub: {name: X}\nspawner: {interfaces: [{name: vscode}]}\n") == [
        "spawner.interfaces[0].name: must be one of 'lab', 'notebook' or 'rstudio'"
    ]


@pytest.mark.slow
def test_the_demo_config_is_valid():
    result = check_config(EXAMPLE)
    assert result.returncode == 0, result.stderr
    assert "OK (2 profiles, 6 choices)" in result.stdout


@pytest.mark.slow
def test_check_config_reports_every_error_with_its_path(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        textwrap.dedent("""\
        hub:
          name: X
          funder: []
        profiles:
          - display_name: A
            alowed_groups: [x]
          - display_name: B
            profile_options:
              image:
                display_name: Image
                choices:
                  big:
                    display_name: Big
                    kubespawner_override: {cpu_limit: 0, mem_limit: lots, cpu_gurantee: 1}
                unlisted_choice: {enabled: true, validation_regex: "([a-z"}
              size:
                display_name: Size
                node_share: {instance: n2-highmem-61, choices: 0}
          - display_name: C
            allowed_groups: []
        culling: {timeout: -5}
        spawner: {kind: docker}
    """)
    )
    result = check_config(broken)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    p = f"{broken}: "
    expected = [
        p + "hub.funder: is not a known setting (did you mean 'funders'?)",
        p + "profiles[1].profile_options.image.unlisted_choice.validation_regex: "
        "is not a valid regular expression: unterminated character set at position 1",
        p + "profiles[1].profile_options.size.node_share[0].instance: unknown instance type "
        "'n2-highmem-61'; did you mean n2-highmem-64, n2-highmem-16, n2-highmem-8?",
        p + "profiles[1].profile_options.size.node_share[0].choices: must be >= 1",
        p + "profiles[2].allowed_groups: an empty allowed_groups offers this to nobody; "
        "remove the key to offer it to everyone, or name the groups",
        p + "spawner.kind: must be one of 'local' or 'kube'",
        p + "culling.timeout: must be > 0",
        # a near miss of allowed_groups would offer the profile to everyone: refused
        p + "profiles[0].alowed_groups: is not a known setting (did you mean 'allowed_groups'?): "
        "as written, this is offered to everyone",
        p + "profiles[1].profile_options.image.choices.big.kubespawner_override.cpu_limit: must be > 0",
        p + "profiles[1].profile_options.image.choices.big.kubespawner_override.mem_limit: "
        "must be a size like 512M, 4G or a number of bytes, not 'lots'",
        # cpu_gurantee is no KubeSpawner setting: KubeSpawner would set it and start, so
        # it is a warning (see tests/test_real_profile_lists.py), not an error
        f"10 error(s) in {broken}",
    ]
    assert lines == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("hub: {name: X}\nhub: {name: Y}\n", "line 2, column 1: not valid YAML: the key 'hub' is given twice"),
        ("hub: [unclosed\n", "line 2, column 1: not valid YAML: expected ',' or ']', but got '<stream end>'"),
        ("- just\n- a list\n", "the file must be a mapping of sections (hub:, profiles:, ...)"),
        ("profiles: []\n", "hub: is required"),
        (
            "hub: {name: X}\nprofiles: [{display_name: A, slug: Bad Slug}]\n",
            "profiles[0].slug: must be lowercase letters, digits, '-' and '_', "
            "starting and ending with a letter or digit",
        ),
        (
            "hub: {name: X}\nprofiles: [{display_name: A, profile_options: {o: {display_name: O}}}]\n",
            "profiles[0].profile_options.o: an option needs choices, a node_share, or an enabled unlisted_choice",
        ),
        (
            "hub: {name: X}\nprofiles: [{display_name: A}, {display_name: a}]\n",
            "profiles[1]: slug 'a' is also the slug of profiles[0]; give one a different slug",
        ),
        (
            "hub: {name: X}\nprofiles: [{display_name: A, kubespawner_override: {cpu_guarantee: 4, cpu_limit: 2}}]\n",
            "profiles[0].kubespawner_override.cpu_guarantee: 4 must not exceed cpu_limit (2)",
        ),
        (
            "hub: {name: X}\nprofiles: [{display_name: A, kubespawner_override: "
            "{extra_resource_limits: {nvidia.com/gpu: half}}}]\n",
            'profiles[0].kubespawner_override.extra_resource_limits["nvidia.com/gpu"]: '
            'must be a whole number of GPUs, like "1"',
        ),
        ("hub: {name: X}\nusage: {host: hub}\n", "usage: set port: a fixed port is needed when host is not 127.0.0.1"),
        (
            "hub: {name: X, funders: [{name: F, url: 'javascript:alert(1)'}]}\n",
            "hub.funders[0].url: must be an http(s) address or a path starting with /, not 'javascript:alert(1)'",
        ),
        (
            "hub: {name: X, operated_by: {name: O, logo_url: 'data:image/svg+xml,<svg onload=alert(1)>'}}\n",
            "hub.operated_by.logo_url: must be an http(s) address or a path starting with /, "
            "not 'data:image/svg+xml,<svg onload=alert(1)>'",
        ),
        (
            "hub: {name: X}\nspawner: {user_environment: {X: '{user}'}}\n",
            "spawner.user_environment: X: unknown placeholder {user}; use {username} or {escaped_username}",
        ),
    ],
)
def test_each_kind_of_mistake_has_a_message(text, expected):
    assert errors_of(text) == [expected]


@pytest.mark.slow
def test_unreadable_file_is_an_error_not_a_traceback(tmp_path):
    result = check_config(tmp_path / "missing.yaml")
    assert result.returncode == 1
    assert "cannot read the file: No such file or directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_existing_kubespawner_profile_list_loads_unchanged():
    # a profile list as zero-to-jupyterhub's singleuser.profileList has it
    z2jh_profile = {
        "display_name": "Datascience",
        "description": "Bigger machine",
        "kubespawner_override": {"image": "jupyter/datascience-notebook:2343e33dec46", "cpu_limit": 2},
        "profile_options": {
            "image": {
                "display_name": "Image",
                "choices": {"a": {"display_name": "A", "kubespawner_override": {"image": "a:1"}}},
                "unlisted_choice": {
                    "enabled": True,
                    "display_name": "Custom",
                    "validation_regex": "^.+:.+$",
                    "validation_message": "need a tag",
                    "kubespawner_override": {"image": "{value}"},
                },
            }
        },
    }
    import yaml

    config = parse_config(yaml.safe_dump({"hub": {"name": "X"}, "profiles": [z2jh_profile]}))
    assert config.profile_list() == [z2jh_profile]


def test_node_share_expands_into_choices_before_written_ones():
    config = load_config(EXAMPLE)
    (cpu, gpu) = config.profile_list()
    choices = cpu["profile_options"]["resources"]["choices"]
    assert list(choices) == ["mem_6_9_gib", "mem_14_gib", "mem_28_gib", "whole-node"]
    assert "node_share" not in cpu["profile_options"]["resources"]
    assert gpu["allowed_groups"] == ["researchers"]


def test_configure_sets_spawner_profiles_templates_and_culler():
    c = Config()
    config = configure(c, EXAMPLE)
    from twoi2c_hub.spawners.local import ProfileLocalSpawner

    assert c.JupyterHub.spawner_class is ProfileLocalSpawner
    assert c.ProfileLocalSpawner.profile_list == config.profile_list()
    assert c.ProfileLocalSpawner.user_environment == {
        "SCRATCH_BUCKET": "s3://demo-community-scratch/{escaped_username}"
    }
    assert Path(c.JupyterHub.template_paths[0], "profile_form.html").exists()
    assert c.JupyterHub.template_vars["community_name"] == "Demo Community Hub"
    assert c.DemoAuthenticator.users["alice"] == {"groups": ["researchers"], "admin": False}

    services = {s["name"]: s for s in c.JupyterHub.services}
    # cost: the demo has prices; cost-checks: and a budget, checked at every start
    assert set(services) == {"idle-culler", "usage", "cost", "cost-checks"}
    culler = services["idle-culler"]
    assert culler["command"][1:] == [
        "-m",
        "jupyterhub_idle_culler",
        "--timeout=3600",
        "--cull-every=300",
        "--max-age=0",
        "--concurrency=10",
        "--cull-users=false",
        "--cull-admin-users=true",
    ]
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["idle-culler"]["services"] == ["idle-culler"]
    assert roles["idle-culler"]["scopes"] == ["list:users", "read:users:activity", "read:servers", "delete:servers"]
    # the usage service reads servers and groups; community admins read everyone's usage
    assert roles["usage-service"]["scopes"] == ["list:users", "read:users", "read:servers", "admin:server_state"]
    assert roles["usage-readers"] == {
        "name": "usage-readers",
        "description": "Community admins: everyone's usage",
        "scopes": ["custom:usage:read-all", "access:services!service=usage"],
        "groups": ["researchers"],
    }
    assert "access:services!service=usage" in c.JupyterHub.extra_user_scopes
    usage = services["usage"]
    assert usage["environment"]["TWOI2C_USAGE_EVENTS_TOKEN"] == c.ProfileLocalSpawner.usage_events_token
    port = usage["url"].rsplit(":", 1)[1]
    # the hub's base_url is filled in when an event is sent: it may be set after configure()
    assert c.ProfileLocalSpawner.usage_events_url == f"http://127.0.0.1:{port}{{base_url}}services/usage/api/v1/events"
    # the cost service reads the usage service's database; community admins read every cost
    cost_environment = services["cost"]["environment"]
    assert cost_environment["TWOI2C_COST_DATABASE_URL"] == "sqlite:///twoi2c-usage.sqlite"
    assert len(cost_environment["TWOI2C_COST_CHECK_TOKEN"]) == 64
    # prices on the spawn form; the demo's budget is checked at spawn
    assert c.ProfileLocalSpawner.pricing.currency == "USD"
    assert c.ProfileLocalSpawner.budget_check_url.endswith("services/cost-checks/api/v1/budgets/check")
    assert roles["cost-readers"]["scopes"] == ["custom:cost:read-all", "access:services!service=cost"]
    assert roles["cost-readers"]["groups"] == ["researchers"]
    assert "access:services!service=cost" in c.JupyterHub.extra_user_scopes


def test_culler_gets_admin_users_scope_only_when_it_deletes_users(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("hub: {name: X}\nculling: {cull_users: true}\n")
    c = Config()
    configure(c, path)
    assert "--cull-users=true" in c.JupyterHub.services[0]["command"]
    assert "admin:users" in c.JupyterHub.load_roles[0]["scopes"]
    path.write_text("hub: {name: X}\nculling: {enabled: false}\nusage: {enabled: false}\n")
    c = Config()
    configure(c, path)
    assert "services" not in c.JupyterHub


def test_configure_stops_the_hub_with_the_same_messages(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("hub: {name: X}\nculling: {timeout: 0}\n")
    with pytest.raises(SystemExit) as stopped:
        configure(Config(), path)
    assert stopped.value.code == 1
    assert "culling.timeout: must be > 0" in capsys.readouterr().err


def test_fancy_profiles_is_served_under_the_hub_or_said_missing(tmp_path, capsys, monkeypatch):
    import jupyterhub_fancy_profiles

    path = tmp_path / "c.yaml"
    path.write_text("hub: {name: X}\nspawner: {form: fancy-profiles}\n")
    c = Config()
    configure(c, path)
    assert c.ProfileLocalSpawner.spawn_form == "fancy-profiles"
    [(route, handler, settings)] = c.JupyterHub.extra_handlers.get_value([])
    assert route == "/fancy-profiles/static/(.*)"  # JupyterHub puts it under {base_url}hub/
    assert Path(settings["path"], "dist", "form.js").is_file()
    assert handler is jupyterhub_fancy_profiles.STATIC_HANDLER_TUPLE[1]
    # not installed: the hub does not start, and says what to install
    monkeypatch.setitem(sys.modules, "jupyterhub_fancy_profiles", None)
    with pytest.raises(SystemExit):
        configure(Config(), path)
    assert "pip install 'twoi2c-hub[fancy-profiles]'" in capsys.readouterr().err


def test_a_logo_file_is_served_by_the_hub_and_checked(tmp_path, capsys):
    (tmp_path / "logo.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    path = tmp_path / "c.yaml"
    path.write_text("hub: {name: X, logo_file: logo.svg}\n")
    c = Config()
    configure(c, path)
    assert c.JupyterHub.logo_file == str(tmp_path / "logo.svg")  # relative to the config file
    assert c.JupyterHub.template_vars["community_logo_file"] is True
    path.write_text("hub: {name: X, logo_file: missing.svg}\n")
    with pytest.raises(SystemExit):
        configure(Config(), path)
    assert f"hub.logo_file: {tmp_path / 'missing.svg'} is not a file" in capsys.readouterr().err
    assert errors_of("hub: {name: X, logo_file: a.svg, logo_url: https://example.org/a.svg}") == [
        "hub: give the logo as logo_url or as logo_file, not both"
    ]


def test_the_idle_culler_parses_the_flags_configure_writes():
    c = Config()
    configure(c, EXAMPLE)
    command = c.JupyterHub.services[0]["command"] + ["--IdleCuller.show_config_json=True"]
    assert c.JupyterHub.services[0]["name"] == "idle-culler"
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["IdleCuller"] == {
        "timeout": 3600,
        "cull_every": 300,
        "max_age": 0,
        "concurrency": 10,
        "cull_users": False,
        "cull_admin_users": True,
    }


@pytest.mark.parametrize(
    "auth, expected",
    [
        (
            {"provider": "facebook"},
            [
                "auth.provider: must be one of 'demo', 'github', 'cilogon', 'oidc', 'workshop' or 'external'; "
                "for the authenticator facebook, use provider: external with class: facebook"
            ],
        ),
        (
            {"provider": "github", "github": {"allowed_organizations": ["org"]}},
            ["auth.client_id: is required for provider github (the secret goes in $OAUTH_CLIENT_SECRET)"],
        ),
        ({"provider": "oidc", "client_id": "x", "allowed_users": ["a"]}, ["auth.oidc: is required for provider oidc"]),
        (
            {
                "provider": "github",
                "client_id": "x",
                "oidc": {"discovery_url": "https://id.example"},
                "allow_all": True,
            },
            ["auth.oidc: is for provider oidc, but auth.provider is github"],
        ),
        (
            {"provider": "github", "client_id": "x"},
            [
                "auth: nobody could log in; set allowed_users, allowed_groups, github.allowed_organizations, "
                "an idp's allowed_domains, or allow_all"
            ],
        ),
        (
            {
                "provider": "oidc",
                "client_id": "x",
                "allowed_groups": ["a"],
                "oidc": {"discovery_url": "https://id.example"},
            },
            [
                "auth.allowed_groups/admin_groups: oidc gives no groups here; set auth.oidc.groups_claim or "
                "auth.oidc.groups_from_scopes"
            ],
        ),
        (
            {
                "provider": "oidc",
                "client_id": "x",
                "allow_all": True,
                "oidc": {"discovery_url": "https://id.example", "groups_claim": "g", "groups_from_scopes": True},
            },
            ["auth.oidc: set groups_claim or groups_from_scopes, not both"],
        ),
        (
            {
                "provider": "workshop",
                "anonymize_usernames": True,
                "admin_users": ["boss"],
                "workshop": {"temporary_accounts": True},
            },
            [
                "auth.anonymize_usernames: the workshop provider has no use for it "
                "(everyone with the password is allowed)",
                "auth.admin_users: temporary accounts get random names, so no admin could log in",
                "auth.workshop.admin_password_env: is required when auth.admin_users is set",
            ],
        ),
        (
            {"provider": "workshop", "workshop": {"opens": "2026-12-01T09:00:00", "closes": "2026-12-01T08:00:00Z"}},
            ["auth.workshop.opens: needs a time zone, e.g. 2026-12-01T09:00:00+01:00 or ...Z"],
        ),
        (
            {"provider": "workshop", "workshop": {"opens": "2026-12-01T09:00:00Z", "closes": "2026-12-01T08:00:00Z"}},
            ["auth.workshop: closes must be after opens"],
        ),
        (
            {"provider": "github", "client_id": "x", "users": {"a": {}}, "allow_all": True},
            ["auth.users: only the demo provider has a fixed list of users"],
        ),
        (
            {"provider": "cilogon", "client_id": "x", "cilogon": {"idps": {}}},
            ["auth.cilogon.idps: dictionary should have at least 1 item after validation, not 0"],
        ),
    ],
)
def test_auth_mistakes_are_caught_by_check_config(auth, expected):
    assert errors_of(yaml_text({"hub": {"name": "X"}, "auth": auth})) == expected


def yaml_text(data) -> str:
    import yaml

    return yaml.safe_dump(data)


def test_configure_needs_the_client_secret_in_the_environment(tmp_path, capsys, monkeypatch):
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml_text(
            {
                "hub": {"name": "X"},
                "auth": {
                    "provider": "github",
                    "client_id": "abc",
                    "client_secret_env": "MY_GITHUB_SECRET",
                    "refresh_age": 0,
                    "github": {"allowed_organizations": ["org-a:team-1"]},
                },
            }
        )
    )
    monkeypatch.delenv("MY_GITHUB_SECRET", raising=False)
    with pytest.raises(SystemExit):
        configure(Config(), path)
    assert "auth.client_id (github): set the environment variable MY_GITHUB_SECRET" in capsys.readouterr().err
    monkeypatch.setenv("MY_GITHUB_SECRET", "s3cret")
    c = Config()
    configure(c, path)
    from twoi2c_hub.authenticators.github import GitHubOAuthenticator

    assert c.JupyterHub.authenticator_class is GitHubOAuthenticator
    assert c.GitHubOAuthenticator.client_secret == "s3cret"
    assert c.GitHubOAuthenticator.scope == ["read:org"]
    assert c.GitHubOAuthenticator.allowed_organizations == {"org-a:team-1"}
    assert c.GitHubOAuthenticator.manage_groups is True
    assert c.GitHubOAuthenticator.explain_refusals is True
    assert c.Authenticator.auth_refresh_age == 0


@pytest.mark.slow
def test_db_upgrade_creates_and_migrates_the_accounting_database(tmp_path):
    import sqlite3

    url = f"sqlite:///{tmp_path / 'usage.sqlite'}"
    for _ in range(2):  # a second run finds nothing to do
        result = subprocess.run(
            [sys.executable, "-m", "twoi2c_hub.cli", "db", "upgrade", "--url", url], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        assert "latest schema" in result.stdout
    with sqlite3.connect(tmp_path / "usage.sqlite") as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [("0010",)]
    assert {
        "sessions",
        "session_groups",
        "group_memberships",
        "usage_daily_user",
        "usage_daily_group",
        "usage_daily_profile",
        "cost_daily_user_profile",
        "cost_daily_user_group",
        "cost_basis",
        "use_daily_user_profile",
        "use_daily_user_group",
    } <= tables


def test_local_servers_run_as_one_unprivileged_user_when_asked(tmp_path):
    base = "hub: {name: H}\nprofiles: [{display_name: A}]\n"
    errors = errors_of(base + "spawner: {local: {server_user: jovyan}}\n")
    assert errors == ["spawner.local: server_user applies only with system_users: false"], errors

    config = tmp_path / "community.yaml"
    config.write_text(base + "spawner: {local: {system_users: false, server_user: jovyan}}\n")
    c = Config()
    configure(c, config)
    assert c.ProfileLocalSpawner.system_users is False
    assert c.ProfileLocalSpawner.server_user == "jovyan"
    assert c.ProfileLocalSpawner.home_dir_template == "/srv/twoi2c-homes/{username}"


PRICED = """
hub: {name: H}
profiles:
  - display_name: GPU
    kubespawner_override:
      cpu_guarantee: 2
      mem_guarantee: 8G
      extra_resource_limits: {nvidia.com/gpu: "1"}
      node_selector: {cloud.google.com/gke-accelerator: nvidia-tesla-t4}
pricing:
"""


@pytest.mark.parametrize(
    "pricing, message",
    [
        (
            "  prices: [{effective: 2026-01-01, cpu_core_hour: -0.1, memory_gib_hour: 0.004, gpu_hour: 1}]",
            "pricing.prices[0].cpu_core_hour: must be >= 0.0",
        ),
        (
            "  prices: [{effective: 2026-01-01, gpu_hour: 1, cpu_core_hour: 1, memory_gib_hour: 1,"
            " instances: {n2-highmem-5: {on_demand: 1}}}]",
            "pricing.prices[0].instances: unknown instance type 'n2-highmem-5'; did you mean n2-highmem-8,",
        ),
        (
            "  prices:\n"
            "    - {effective: 2026-01-01, cpu_core_hour: 1, memory_gib_hour: 1, gpu_hour: 1}\n"
            "    - {effective: 2026-01-01, cpu_core_hour: 2, memory_gib_hour: 1, gpu_hour: 1}",
            "pricing: prices[1] (from 2026-01-01) overlaps prices[0] (from 2026-01-01 until 2026-01-01)",
        ),
        (
            "  prices:\n"
            "    - {effective: 2026-03-01, cpu_core_hour: 2, memory_gib_hour: 1, gpu_hour: 1}\n"
            "    - {effective: 2026-01-01, until: 2026-04-01, cpu_core_hour: 1, memory_gib_hour: 1, gpu_hour: 1}",
            "pricing: prices[0] (from 2026-03-01) overlaps prices[1] (from 2026-01-01 until 2026-04-01)",
        ),
        (
            "  prices:\n"
            "    - {effective: 2026-01-01, until: 2026-02-01, cpu_core_hour: 1, memory_gib_hour: 1, gpu_hour: 1}\n"
            "    - {effective: 2026-03-01, cpu_core_hour: 2, memory_gib_hour: 1, gpu_hour: 1}",
            "pricing: no prices from 2026-02-01 until 2026-03-01: between prices[0] and prices[1]",
        ),
        (
            "  prices: [{effective: 2026-01-01, cpu_core_hour: 0.03, memory_gib_hour: 0.004}]",
            "pricing: profile 'gpu' has no price: the prices from 2026-01-01 have no gpu_hour for nvidia-tesla-t4",
        ),
        (
            "  currency: dollars\n"
            "  prices: [{effective: 2026-01-01, cpu_core_hour: 1, memory_gib_hour: 1, gpu_hour: 1}]",
            "pricing.currency:",
        ),
    ],
    ids=["negative", "unknown-instance", "same-date", "overlap", "gap", "unpriced-profile", "currency"],
)
def test_check_config_catches_pricing_mistakes(pricing, message):
    errors = errors_of(PRICED + pricing + "\n")
    assert any(e.startswith(message) for e in errors), errors


def test_the_demo_prices_every_profile_and_choice():
    config = load_config(EXAMPLE)
    prices = config.pricing.to_pricing()
    assert prices.currency == "USD" and prices.charge == "node_share"
    assert len(config.pricing.prices) == 1


@pytest.mark.parametrize(
    "budgets, message",
    [
        ("budgets: [{name: b, applies_to: hub, names: [x], limit: 5}]", "budgets.budgets[0]: a hub budget names no"),
        ("budgets: [{name: b, applies_to: group, limit: 5}]", "budgets.budgets[0]: name the groups it applies to"),
        ("budgets: [{name: b, applies_to: hub, limit: 5, period: fortnight}]", "budgets.budgets[0].period: must be"),
        ("budgets: [{name: b, applies_to: hub, limit: -5}]", "budgets.budgets[0].limit: must be > 0"),
        (
            "budgets: [{name: b, applies_to: hub, limit: 5, thresholds: [{at: 80, action: explode}]}]",
            "budgets.budgets[0].thresholds[0].action:",
        ),
        (
            "budgets: [{name: b, applies_to: hub, limit: 5}, {name: b, applies_to: hub, limit: 6}]",
            "budgets: budgets[1]: another budget is also named 'b'",
        ),
        ("alerts: {webhook: {}}", "budgets.alerts.webhook: give url or url_env"),
    ],
    ids=["hub-names", "group-without-names", "period", "negative", "action", "duplicate", "webhook"],
)
def test_check_config_catches_budget_mistakes(budgets, message):
    text = "hub: {name: H}\nprofiles: [{display_name: A, kubespawner_override: {cpu_guarantee: 1}}]\n"
    text += "pricing: {prices: [{effective: 2026-01-01, cpu_core_hour: 0.03}]}\n"
    errors = errors_of(text + "budgets: {" + budgets + "}\n")
    assert any(e.startswith(message) for e in errors), errors


def test_budgets_need_prices():
    errors = errors_of("hub: {name: H}\nbudgets: {budgets: [{name: b, applies_to: hub, limit: 5}]}\n")
    assert errors == ["budgets: need pricing: and the cost service (cost.enabled), which keeps them"], errors


def test_with_budgets_the_spawn_time_check_has_a_process_of_its_own(tmp_path):
    config = tmp_path / "community.yaml"
    config.write_text(
        "hub: {name: H}\nprofiles: [{display_name: A, kubespawner_override: {cpu_guarantee: 1}}]\n"
        "pricing: {prices: [{effective: 2026-01-01, cpu_core_hour: 0.03}]}\n"
        "budgets: {budgets: [{name: b, applies_to: hub, limit: 5}], when_unreadable: deny}\n"
    )
    c = Config()
    configure(c, config)
    services = {s["name"]: s for s in c.JupyterHub.services}
    checks = services["cost-checks"]
    assert checks["command"][-1] == "--checks-only" and checks["display"] is False
    port = checks["url"].rsplit(":", 1)[1]
    assert (
        c.ProfileLocalSpawner.budget_check_url
        == f"http://127.0.0.1:{port}{{base_url}}services/cost-checks/api/v1/budgets/check"
    )
    token = c.ProfileLocalSpawner.budget_check_token
    assert (
        checks["environment"]["TWOI2C_COST_CHECK_TOKEN"]
        == token
        == services["cost"]["environment"]["TWOI2C_COST_CHECK_TOKEN"]
    )
    assert c.ProfileLocalSpawner.budget_when_unreadable == "deny"


def test_spawners_share_the_instance_catalog_instead_of_copying_it():
    # JupyterHub builds a spawner at every start and traitlets deep-copies each configured
    # value into it: the immutable instance types are shared, the mapping is each spawner's
    c = Config()
    configure(c, EXAMPLE)
    from twoi2c_hub.spawners.local import ProfileLocalSpawner

    first, second = ProfileLocalSpawner(config=c), ProfileLocalSpawner(config=c)
    assert first.instance_types == c.ProfileLocalSpawner.instance_types and len(first.instance_types) > 10
    assert first.instance_types is not second.instance_types
    for name, instance in first.instance_types.items():
        assert second.instance_types[name] is instance is c.ProfileLocalSpawner.instance_types[name]


def test_the_services_ports_are_never_the_hubs_nor_each_others(monkeypatch):
    """A port picked is bound seconds later, when the hub starts the proxy or a service: the
    OS may offer it again meanwhile (it did once in CI: the proxy's port went to the cost
    service, which could not start). The local hub runner reserves its ports for the hub
    process; the wiring's picks skip them and each other."""
    import itertools

    from twoi2c_hub import network

    offered = itertools.chain([41001, 41001, 41002, 41003, 41004], itertools.repeat(41001))
    monkeypatch.setattr(network, "_pick_and_hold", lambda host: next(offered))  # what the OS offers
    monkeypatch.setattr(network, "_handed_out", set())
    monkeypatch.setenv(network.RESERVED_PORTS_VARIABLE, "41002")  # the runner's proxy port
    c = Config()
    configure(c, EXAMPLE)
    ports = [int(s["url"].rsplit(":", 1)[1]) for s in c.JupyterHub.services if "url" in s]
    assert sorted(ports) == [41001, 41003, 41004]  # usage, cost, cost-checks: 41001 once, 41002 never
    with pytest.raises(RuntimeError, match="no free TCP port"):
        network.free_port()  # the OS offers only taken ports: a clear error, not a loop


NEITHER = "is neither a username nor group:NAME (a group whose members lead it)"
WITH_COST_SERVICE = (
    "hub: {name: H}\nprofiles: [{display_name: A, kubespawner_override: {cpu_guarantee: 1}}]\n"
    "pricing: {prices: [{effective: 2026-01-01, cpu_core_hour: 0.03}]}\n"
)


@pytest.mark.parametrize(
    "leads, expected",
    [
        (
            "{students: []}",
            ['group_leads["students"]: names no lead; give usernames, or group:NAME for a group\'s members'],
        ),
        (
            '{"a!b": [ann]}',
            ["group_leads[\"a!b\"]: not a group name: 1-255 characters, no '!', no spaces at either end"],
        ),
        (
            '{students: [ann, "group:", "team:x", ann]}',
            [
                f"group_leads[\"students\"][1]: 'group:' {NEITHER}",
                f"group_leads[\"students\"][2]: 'team:x' {NEITHER}",
                "group_leads[\"students\"][3]: 'ann' is named twice",
            ],
        ),
        ("{students: ann}", ["group_leads.students: input should be a valid list"]),
    ],
    ids=["no-lead", "group-name", "entries", "not-a-list"],
)
def test_check_config_catches_group_lead_mistakes(leads, expected):
    assert errors_of(WITH_COST_SERVICE + f"group_leads: {leads}\n") == expected


def test_group_leads_need_the_cost_service():
    errors = errors_of("hub: {name: H}\ngroup_leads: {students: [ann]}\n")
    assert errors == ["group_leads: need pricing: and the cost service (cost.enabled), where leads read"]


def test_each_groups_leads_hold_the_cost_services_scope_filtered_to_that_group(tmp_path):
    config = tmp_path / "community.yaml"
    config.write_text(WITH_COST_SERVICE + "group_leads: {students: [ann, 'group:tas'], Lab 1: [bo]}\n")
    c = Config()
    configure(c, config)
    roles = {r["name"]: r for r in c.JupyterHub.load_roles if r["name"].startswith("group-leads-")}
    students = next(r for r in roles.values() if "custom:cost:read-group!group=students" in r["scopes"])
    assert students["users"] == ["ann"] and students["groups"] == ["tas"]
    assert "access:services!service=cost" in students["scopes"]
    lab = next(r for r in roles.values() if "custom:cost:read-group!group=Lab 1" in r["scopes"])
    assert lab["users"] == ["bo"] and lab["name"].startswith("group-leads-lab-1-")
    assert "custom:cost:read-group" in c.JupyterHub.custom_scopes
    cost = next(s for s in c.JupyterHub.services if s["name"] == "cost")
    assert "custom:cost:read-group" in cost["oauth_client_allowed_scopes"]
