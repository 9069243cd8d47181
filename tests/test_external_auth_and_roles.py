"""Any JupyterHub authenticator (`auth.provider: external`) and JupyterHub roles (`roles:`):
what check-config says, what convert makes of a real hub's `hub.config` and
`hub.loadRoles` (in the shapes the public deployments use; values written here), the
wiring, and a real hub with the shared-password authenticator and a role for a group."""

import asyncio
import json

import jupyterhub
import pytest
import requests
import yaml
from bs4 import BeautifulSoup
from jupyterhub.auth import DummyAuthenticator
from jupyterhub.authenticators.shared import SharedPasswordAuthenticator
from oauthenticator.google import GoogleOAuthenticator
from traitlets.config import Config

from twoi2c_hub import configure
from twoi2c_hub.authenticators.base import CommunityAuthenticatorMixin, LoginRefused
from twoi2c_hub.authenticators.external import ExternalAuthenticatorMixin, community_class
from twoi2c_hub.config.loading import ConfigError, parse_config
from twoi2c_hub.paths import demo_config
from twoi2c_hub.replicate.convert import convert

CANVAS = "canvasoauthenticator.CanvasOAuthenticator"
CANVAS_PIP = "pip install git+https://github.com/berkeley-dsep-infra/canvasoauthenticator"
LTI = "ltiauthenticator.lti11.auth.LTI11Authenticator"


def errors_of(config: dict) -> list[str]:
    try:
        parse_config(yaml.safe_dump(config))
    except ConfigError as e:
        return e.errors
    return []


def hub_with(auth: dict, **sections) -> dict:
    return {"hub": {"name": "Course hub"}, "auth": auth, **sections}


def notes_by_path(notes) -> dict[str, str]:
    return {note.path: note.what for note in notes}


# --- check-config -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["google", "dummy", "shared-password", "null", "oauthenticator.auth0.Auth0OAuthenticator"]
)
def test_an_installed_authenticator_passes_check_config(name):
    assert errors_of(hub_with({"provider": "external", "class": name})) == []


@pytest.mark.parametrize(
    "name, expected",
    [
        (CANVAS, f"auth.class: '{CANVAS}' is not installed ({CANVAS_PIP})"),
        (LTI, f"auth.class: '{LTI}' is not installed (pip install jupyterhub-ltiauthenticator)"),
        ("tmp", "auth.class: 'tmp' is not installed: no jupyterhub.authenticators entry point of that name "
                "(pip install jupyterhub-tmpauthenticator)"),
        ("jupyterhub.auth.Nothing", "auth.class: 'jupyterhub.auth.Nothing': the module jupyterhub.auth has no Nothing"),
        ("json.JSONDecoder", "auth.class: 'json.JSONDecoder' is not a JupyterHub Authenticator class"),
    ],
)  # fmt: skip
def test_an_authenticator_that_is_not_there_fails_check_config_and_says_what_to_install(name, expected):
    assert errors_of(hub_with({"provider": "external", "class": name})) == [expected]


def test_external_settings_are_checked_against_the_class():
    auth = {
        "provider": "external",
        "class": "dummy",
        "settings": {"pasword": "x", "admin_users": ["ops"], "password": "in-the-file"},
        "groups_claim": "groups",
    }
    assert errors_of(hub_with(auth)) == [  # (in the order of the keys: the file is written sorted)
        "auth.settings.admin_users: set auth.admin_users instead",
        "auth.settings.password: a secret; put it in an environment variable and name that in "
        "auth.settings_from_env.password",
        "auth.groups_claim: only for OAuthenticator classes; DummyAuthenticator is not one",
    ]


def test_a_setting_the_installed_class_lacks_is_a_warning_as_jupyterhub_ignores_it():
    # a hub may have run a newer or patched class (2i2c's Google hubs: allowed_hosted_domains)
    auth = {"provider": "external", "class": "dummy", "settings": {"pasword": "x"}}
    auth["settings_from_env"] = {"allowed_hosted_domains": "DOMAINS"}
    config = parse_config(yaml.safe_dump(hub_with(auth)))
    version = jupyterhub.__version__
    assert config.warnings == [
        f"auth.settings.pasword: is not a setting of DummyAuthenticator as installed here (jupyterhub {version}): "
        "JupyterHub will ignore it (did you mean 'password'?)",
        f"auth.settings_from_env.allowed_hosted_domains: is not a setting of DummyAuthenticator as installed here "
        f"(jupyterhub {version}): JupyterHub will ignore it (did you mean 'allowed_users'?)",
    ]


def test_another_authenticators_name_as_provider_points_to_external():
    assert errors_of(hub_with({"provider": "google"})) == [
        "auth.provider: must be one of 'demo', 'github', 'cilogon', 'oidc', 'workshop' or 'external'; "
        "for the authenticator google, use provider: external with class: google"
    ]


def test_an_unconverted_authenticator_never_passes():
    auth = {"provider": "unconverted", "reason": "chosen in Python (hub.extraConfig.auth)"}
    assert errors_of(hub_with(auth)) == [
        "auth: the hub's authenticator was not converted: chosen in Python (hub.extraConfig.auth)"
    ]


COURSE_ROLES = [
    {
        "name": "course-staff",
        "description": "Teachers of course A",
        "scopes": ["admin-ui", "list:users!group=course-a", "access:servers!group=course-a", "custom:grades:write"],
        "groups": ["course-a-teachers"],
    },
    {"name": "user", "scopes": ["self", "access:services"]},  # JupyterHub's own user role, redefined
    {"name": "admin", "users": ["ops1"]},  # its holders may be named
    {"name": "reporting", "scopes": ["read:users:activity"], "services": ["usage"]},
]


def test_roles_with_filters_custom_scopes_and_the_user_role_pass():
    config = hub_with(
        {"provider": "demo"}, roles=COURSE_ROLES, custom_scopes={"custom:grades:write": {"description": "Write grades"}}
    )
    assert errors_of(config) == []


@pytest.mark.parametrize(
    "role, expected",
    [
        ({"name": "staff", "scopes": ["lst:users"]},
         "roles[0].scopes[0]: 'lst:users' is not a JupyterHub scope (did you mean 'list:users'?)"),
        ({"name": "staff", "scopes": ["all"]}, "roles[0].scopes[0]: 'all' is called 'inherit' in JupyterHub"),
        ({"name": "staff", "scopes": ["read:users!course=a"]},
         "roles[0].scopes[0]: the filter '!course=a' is not one JupyterHub knows: !user=NAME, !group=NAME, "
         "!server=USER/SERVER or !service=NAME (or !user, !server, !service alone)"),
        ({"name": "staff", "scopes": ["read:users!group="]}, "roles[0].scopes[0]: the filter '!group=' names nothing"),
        ({"name": "staff", "scopes": ["custom:grades:write"]},
         "roles[0].scopes[0]: 'custom:grades:write' is not defined; define it in custom_scopes"),
        ({"name": "usage-readers", "scopes": ["self"]},
         "roles[0].name: 'usage-readers' is the hub's own role for its services; choose another name"),
        ({"name": "binder", "scopes": ["self"], "services": ["binder"]},
         "roles[0].services[0]: 'binder' is not a service of this hub (its services: idle-culler, usage)"),
        ({"name": "admin", "scopes": ["self"]},
         "roles[0]: the built-in admin role's scopes and description cannot be changed (JupyterHub refuses "
         "it); name its holders only, or define a role of your own"),
        ({"name": "Staff"},
         "roles[0].name: 'Staff' is not a role name JupyterHub accepts: 3-255 characters, lowercase letters, "
         "digits and '-._~', starting with a letter and ending with a letter or digit"),
    ],
)  # fmt: skip
def test_role_mistakes_are_caught_by_check_config(role, expected):
    assert errors_of(hub_with({"provider": "demo"}, roles=[role])) == [expected]


# --- convert ------------------------------------------------------------------------------


def canvas_values() -> dict:
    return {
        "hub": {
            "config": {
                "JupyterHub": {"authenticator_class": CANVAS},
                "CanvasOAuthenticator": {
                    "canvas_url": "https://lms.example.edu",
                    "client_id": "abc",
                    "client_secret": "not-to-be-copied",
                    "strip_email_domain": "example.edu",
                },
                "Authenticator": {"admin_users": ["ops1"], "allowed_users": ["ops1"]},
                "OAuthenticator": {"oauth_callback_url": "https://hub.example.edu/hub/oauth_callback"},
            },
            "loadRoles": {
                "course-staff": {
                    "description": "Course staff",
                    "scopes": ["admin-ui", "list:users!group=course-a", "access:servers!group=course-a"],
                    "groups": ["course-a-teachers"],
                },
                "user-login": {"name": "user", "scopes": ["self", "access:services"]},
                "binder-role": {"scopes": ["servers"], "services": ["binder"]},
            },
        }
    }


def test_a_canvas_hub_keeps_its_authenticator_and_roles_and_fails_check_config_only_for_the_package():
    config, notes = convert([canvas_values()])
    assert config["auth"] == {
        "provider": "external",
        "class": CANVAS,
        "settings_from_env": {"client_secret": "OAUTH_CLIENT_SECRET"},
        "admin_users": ["ops1"],
        "allowed_users": ["ops1"],
        "settings": {
            "oauth_callback_url": "https://hub.example.edu/hub/oauth_callback",
            "canvas_url": "https://lms.example.edu",
            "client_id": "abc",
            "strip_email_domain": "example.edu",
        },
    }
    assert "not-to-be-copied" not in json.dumps(config)
    said = notes_by_path(notes)
    assert said["hub.config.CanvasOAuthenticator.client_secret"] == (
        "a secret: not copied; put it in $OAUTH_CLIENT_SECRET (auth.settings_from_env.client_secret)"
    )
    assert config["roles"] == [
        {
            "name": "course-staff",
            "description": "Course staff",
            "scopes": ["admin-ui", "list:users!group=course-a", "access:servers!group=course-a"],
            "groups": ["course-a-teachers"],
        },
        {"name": "user", "scopes": ["self", "access:services"]},
        {"name": "binder-role", "scopes": ["servers"]},
    ]
    assert "'binder' is one of the chart's hub.services" in said["hub.loadRoles.binder-role.services"]
    assert not any(
        p.startswith(("hub.loadRoles", "hub.config.Authenticator")) and "not converted (no" in w
        for p, w in said.items()
    )
    assert errors_of(config) == [f"auth.class: '{CANVAS}' is not installed ({CANVAS_PIP})"]


def test_a_google_hub_in_2i2c_shape_converts_and_passes_check_config():
    values = {
        "jupyterhub": {
            "custom": {"2i2c": {"add_staff_user_ids_to_admin_users": True, "add_staff_user_ids_of_type": "google",
                                "staff_google_ids": ["eng@2i2c.org"]}},
            "hub": {
                "config": {
                    "JupyterHub": {"authenticator_class": "google"},
                    "GoogleOAuthenticator": {"hosted_domain": ["example.org"], "client_id": "gid"},
                    "OAuthenticator": {"oauth_callback_url": "https://x.example.org/hub/oauth_callback"},
                    "Authenticator": {"admin_users": ["pi@example.org"], "allow_all": True},
                }
            },
        }
    }  # fmt: skip
    config, _ = convert([values])
    auth = config["auth"]
    assert auth["provider"] == "external" and auth["class"] == "google"
    assert auth["admin_users"] == ["eng@2i2c.org", "pi@example.org"]
    assert auth["settings"]["hosted_domain"] == ["example.org"]
    assert errors_of(config) == []


def test_2i2c_staff_not_among_the_files_are_named():
    values = {
        "custom": {"2i2c": {"add_staff_user_ids_to_admin_users": True, "add_staff_user_ids_of_type": "github"}},
        "hub": {"config": {"JupyterHub": {"authenticator_class": "github"},
                           "GitHubOAuthenticator": {"client_id": "x"}}},
    }  # fmt: skip
    config, notes = convert([values])
    assert config["auth"]["provider"] == "github"
    assert (
        "2i2c's staff (custom.2i2c.staff_github_ids"
        in notes_by_path(notes)["custom.2i2c.add_staff_user_ids_to_admin_users"]
    )
    # nobody else could log in: check-config says so rather than start a hub nobody may use
    assert any("nobody could log in" in e for e in errors_of(config))


@pytest.mark.parametrize(
    "name, provider",
    [
        ("github", "github"),
        ("cilogon", "cilogon"),
        ("generic-oauth", "oidc"),
        ("tmp", "external"),
        ("shared-password", "external"),
    ],
)
def test_2i2c_short_names_map_to_our_providers_or_external(name, provider):
    config, _ = convert([{"hub": {"config": {"JupyterHub": {"authenticator_class": name}}}}])
    assert config["auth"]["provider"] == provider


def test_a_binder_hub_keeps_the_null_authenticator_and_says_so():
    config, notes = convert([{"hub": {"config": {"JupyterHub": {"authenticator_class": "null"}}}}])
    assert config["auth"] == {"provider": "external", "class": "null"}
    assert "nobody logs in through the hub" in notes_by_path(notes)["hub.config.JupyterHub.authenticator_class"]
    assert errors_of(config) == []


def test_shared_passwords_are_never_copied():
    section = {"user_password": "hunter2hunter2", "manage_groups": True, "password_groups": {"s3cret-pass": ["tas"]}}
    values = {"hub": {"config": {"JupyterHub": {"authenticator_class": "shared-password"},
                                 "SharedPasswordAuthenticator": section}}}  # fmt: skip
    config, notes = convert([values])
    assert "hunter2" not in json.dumps(config) and "s3cret" not in json.dumps(config)
    assert config["auth"]["settings_from_env"] == {
        "user_password": "AUTH_USER_PASSWORD",
        "password_groups": "AUTH_PASSWORD_GROUPS",
    }
    assert config["auth"]["settings"] == {"manage_groups": True}
    assert errors_of(config) == []


def test_an_authenticator_chosen_in_python_is_not_converted_and_fails_check_config():
    values = {"hub": {"extraConfig": {"auth": "c.JupyterHub.authenticator_class = MyAuth"}}}
    config, notes = convert([values])
    assert config["auth"]["provider"] == "unconverted"
    reason = "the authenticator is chosen in Python (hub.extraConfig.auth)"
    assert reason in notes_by_path(notes)["hub.config.JupyterHub.authenticator_class"]
    assert len(errors_of(config)) == 1 and reason in errors_of(config)[0]


def test_a_hub_without_an_authenticator_runs_z2jhs_dummy_and_says_so():
    config, notes = convert([{"singleuser": {"image": {"name": "img", "tag": "1"}}}])
    assert config["auth"] == {"provider": "external", "class": "dummy"}
    assert "zero-to-jupyterhub's default" in notes_by_path(notes)["hub.config.JupyterHub.authenticator_class"]


# --- the wiring and the mixins ------------------------------------------------------------


def write(tmp_path, config: dict):
    path = tmp_path / "community.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_wiring_an_oauthenticator_keeps_its_settings_and_adds_ours(tmp_path, monkeypatch):
    monkeypatch.setenv("GOOGLE_SECRET", "s")
    auth = {
        "provider": "external",
        "class": "google",
        "settings": {"client_id": "gid", "hosted_domain": ["example.org"]},
        "settings_from_env": {"client_secret": "GOOGLE_SECRET"},
        "admin_groups": ["staff"],
        "groups_claim": "groups",
        "groups": {"prefix": "g-"},
    }
    c = Config()
    custom_scopes = {"custom:grades:write": {"description": "Write grades"}}
    configure(c, write(tmp_path, hub_with(auth, roles=COURSE_ROLES[:2], custom_scopes=custom_scopes)))
    cls = c.JupyterHub.authenticator_class
    assert issubclass(cls, GoogleOAuthenticator) and issubclass(cls, CommunityAuthenticatorMixin)
    authenticator = cls(config=c)
    assert authenticator.client_secret == "s" and authenticator.hosted_domain == ["example.org"]
    assert authenticator.admin_groups == {"staff"} and authenticator.manage_groups
    assert authenticator.map_groups(["a"]) == {"g-a"} and authenticator.explain_refusals
    roles = {role["name"]: role for role in c.JupyterHub.load_roles}
    # the services' roles are still there, and the redefined user role keeps their access
    assert {"idle-culler", "usage-service", "usage-readers", "course-staff", "user"} <= set(roles)
    assert roles["user"]["scopes"] == ["self", "access:services", "access:services!service=usage"]
    assert c.JupyterHub.extra_user_scopes == set()
    assert c.JupyterHub.custom_scopes["custom:grades:write"] == {"description": "Write grades"}


def test_a_secret_setting_must_be_in_its_environment_variable(tmp_path, capsys):
    auth = {"provider": "external", "class": "shared-password", "settings_from_env": {"user_password": "NOT_SET_HERE"}}
    with pytest.raises(SystemExit):
        configure(Config(), write(tmp_path, hub_with(auth)))
    assert "auth.settings_from_env.user_password: set the environment variable NOT_SET_HERE" in capsys.readouterr().err


def shared_password(**settings):
    cls = community_class(SharedPasswordAuthenticator)
    assert issubclass(cls, ExternalAuthenticatorMixin) and cls.__name__ == "SharedPasswordAuthenticator"
    return cls(explain_refusals=True, manage_groups=True, **settings)


def log_in_directly(authenticator, username, password):
    return asyncio.run(authenticator.get_authenticated_user(None, {"username": username, "password": password}))


def test_a_plain_authenticators_groups_are_mapped_and_admin_groups_apply():
    authenticator = shared_password(
        password_groups={"teacher-password": ["teachers"]},
        group_renames=[{"match": "^teachers$", "replace": "course-a-teachers"}],
        community_admin_groups={"course-a-teachers"},
        allow_all=True,
    )
    model = log_in_directly(authenticator, "ada", "teacher-password")
    assert model["groups"] == ["course-a-teachers"] and model["admin"] is True
    assert log_in_directly(authenticator, "ada", "wrong") is None  # the class's own refusal


def test_a_plain_authenticator_refuses_with_a_reason_outside_the_allowed_groups():
    authenticator = shared_password(
        user_password="everyone-password",
        password_groups={"student-password": ["students"]},
        community_allowed_groups={"students"},
    )
    assert log_in_directly(authenticator, "bo", "student-password")["groups"] == ["students"]
    with pytest.raises(LoginRefused) as refused:
        log_in_directly(authenticator, "eve", "everyone-password")
    assert "not a member of any of the groups allowed on this hub: students" in refused.value.jupyterhub_message


def test_a_plain_authenticator_gives_anonymised_names():
    cls = community_class(DummyAuthenticator)
    authenticator = cls(anonymize_usernames=True, anonymous_secret="k" * 32)
    name = log_in_directly(authenticator, "ada", "")["name"]
    assert name.startswith("u") and len(name) == 32 and "ada" not in name
    assert log_in_directly(authenticator, "ada", "")["name"] == name


# --- a real hub ---------------------------------------------------------------------------

TEACHER_PASSWORD = "teacher-password-1"
STUDENT_PASSWORD = "student-password-1"
OTHER_PASSWORD = "someone-password-1"


@pytest.mark.hub
def test_a_real_hub_with_shared_passwords_maps_groups_refuses_with_a_reason_and_grants_a_role(hub_factory, tmp_path):
    config = demo_config()
    config["auth"] = {
        "provider": "external",
        "class": "shared-password",
        "settings_from_env": {"user_password": "COURSE_PASSWORD", "password_groups": "COURSE_GROUP_PASSWORDS"},
        "groups": {"rename": [{"match": "^teachers$", "replace": "course-a-teachers"}]},
        "allowed_groups": ["course-a-teachers", "course-a"],
    }
    config["culling"] = {"enabled": False}
    scopes = ["list:users!group=course-a", "read:users!group=course-a"]
    config["roles"] = [{"name": "course-staff", "scopes": scopes, "groups": ["course-a-teachers"]}]
    groups = {TEACHER_PASSWORD: ["teachers"], STUDENT_PASSWORD: ["course-a"]}
    hub = hub_factory(
        write(tmp_path, config),
        "external-auth-hub",
        environment={"COURSE_PASSWORD": OTHER_PASSWORD, "COURSE_GROUP_PASSWORDS": json.dumps(groups)},
    )

    def log_in(username, password):
        session = requests.Session()
        session.get(f"{hub.url}/hub/login", timeout=30)
        data = {"username": username, "password": password, "_xsrf": hub.xsrf(session)}
        return session.post(f"{hub.url}/hub/login?next=", data=data, allow_redirects=False, timeout=30)

    assert log_in("tess", TEACHER_PASSWORD).status_code == 302
    assert log_in("sam", STUDENT_PASSWORD).status_code == 302
    assert hub.user_model("tess")["groups"] == ["course-a-teachers"]
    assert hub.user_model("sam")["groups"] == ["course-a"]

    refused = log_in("eve", OTHER_PASSWORD)
    assert refused.status_code == 403
    text = BeautifulSoup(refused.content, "html.parser").get_text(" ")
    assert "not a member of any of the groups allowed on this hub: course-a, course-a-teachers" in text
    assert hub.user_model("eve") is None

    # the role: the teacher lists the course's people through the REST API, the student may not
    teacher = hub.api("GET", "/users", token=hub.user_token("tess"))
    assert teacher.status_code == 200
    assert [u["name"] for u in teacher.json()] == ["sam"]
    assert hub.api("GET", "/users", token=hub.user_token("sam")).status_code == 403
