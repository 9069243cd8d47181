"""Who may log in and who may do what on a zero-to-jupyterhub hub, as the community
config's `auth:` and `roles:`.

The authenticator is read where z2jh documents it: `hub.config.JupyterHub.authenticator_class`,
the class's own section and the `Authenticator`/`OAuthenticator` sections beneath it
(traitlets reads a class's section over its parents'). GitHub, CILogon and generic OAuth
become our providers; any other class becomes `provider: external` with its settings. A
client secret or a password is never copied: the config names the environment variable
to put it in. An authenticator that cannot be carried becomes `provider: unconverted`,
which check-config refuses with the reason, so a real hub never starts as another one.
`hub.loadRoles` (and `JupyterHub.load_roles`) become `roles:`.
"""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import urlsplit

from ..config.external_auth import _FIRST_CLASS, _SECRET, class_facts
from ..config.yamlfile import shown
from .values import Note

OURS = {
    "github": "github",
    "oauthenticator.github.GitHubOAuthenticator": "github",
    "oauthenticator.GitHubOAuthenticator": "github",
    "cilogon": "cilogon",
    "oauthenticator.cilogon.CILogonOAuthenticator": "cilogon",
    "oauthenticator.CILogonOAuthenticator": "cilogon",
    "generic-oauth": "oidc",
    "generic": "oidc",
    "oauthenticator.generic.GenericOAuthenticator": "oidc",
    "oauthenticator.GenericOAuthenticator": "oidc",
}
_CLASS = {"github": "GitHubOAuthenticator", "cilogon": "CILogonOAuthenticator", "oidc": "GenericOAuthenticator"}
# settings our providers do not need: what configure() sets itself, or implies
_IMPLIED = ("enable_auth_state", "manage_groups", "populate_teams_in_auth_state", "scope", "userdata_params")
# the hub.config section of an entry-point name (the class's name)
SECTIONS = {
    "google": "GoogleOAuthenticator",
    "gitlab": "GitLabOAuthenticator",
    "azuread": "AzureAdOAuthenticator",
    "auth0": "Auth0OAuthenticator",
    "bitbucket": "BitbucketOAuthenticator",
    "globus": "GlobusOAuthenticator",
    "openshift": "OpenShiftOAuthenticator",
    "mediawiki": "MWOAuthenticator",
    "tmp": "TmpAuthenticator",
    "dummy": "DummyAuthenticator",
    "null": "NullAuthenticator",
    "shared-password": "SharedPasswordAuthenticator",
    "pam": "PAMAuthenticator",
    "default": "PAMAuthenticator",
}
ROLE_KEYS = ("description", "scopes", "users", "groups", "services")
OWN_SERVICES = ("usage", "cost", "idle-culler")
CLASS_PATH = "hub.config.JupyterHub.authenticator_class"


def auth_and_roles(z2jh, notes: list) -> dict:
    """{"auth": ..., "roles": [...] (when the hub has any)} from the values `z2jh`."""
    result: dict[str, Any] = {"auth": _auth(z2jh, notes)}
    roles = _roles(z2jh, notes)
    if roles:
        result["roles"] = roles
    return result


def _note(notes: list, z2jh, path: str, what: str) -> None:
    notes.append(Note(z2jh.prefix + path, what))


def _auth(z2jh, notes: list) -> dict:
    name = z2jh.get(CLASS_PATH)
    if name is None:
        chosen_in_python = _chosen_in_python(z2jh)
        if chosen_in_python:
            return _unconverted(z2jh, notes, chosen_in_python)
        name = "dummy"  # zero-to-jupyterhub's default (its values.yaml)
    if not isinstance(name, str) or not name.strip():
        return _unconverted(z2jh, notes, f"{z2jh.prefix}{CLASS_PATH} is {shown(name)}, not a class name")
    provider = OURS.get(name)
    auth = _ours(z2jh, notes, provider) if provider else _external(z2jh, notes, name)
    _staff(z2jh, notes, auth)
    if z2jh.get("custom.auth.anonymizeUsername"):
        auth["anonymize_usernames"] = True
    return auth


def _chosen_in_python(z2jh) -> str | None:
    """Why the authenticator cannot be read, when Python in hub.extraConfig chooses it."""
    extra = z2jh.peek("hub.extraConfig") or {}
    for key, code in extra.items() if isinstance(extra, dict) else []:
        if "authenticator_class" in str(code):
            return (
                f"the authenticator is chosen in Python ({z2jh.prefix}hub.extraConfig.{key}); "
                "read it and set auth: by hand (provider external and its class, if none of ours fits)"
            )
    return None


def _unconverted(z2jh, notes: list, reason: str) -> dict:
    _note(notes, z2jh, CLASS_PATH, f"the authenticator was not converted: {reason}")
    return {"provider": "unconverted", "reason": reason}


def _sections(z2jh, names: list[str]) -> list[tuple[str, dict]]:
    """(path, settings) of the hub.config sections `names`, parents first."""
    found = []
    for name in names:
        section = z2jh.peek(f"hub.config.{name}")
        if isinstance(section, dict) and section:
            found.append((f"hub.config.{name}", section))
    return found


def _common(auth: dict, settings: dict) -> None:
    """The settings every provider has, in the community config's names."""
    for key, target in (("allowed_users", "allowed_users"), ("admin_users", "admin_users"),
                        ("blocked_users", "blocked_users"), ("allow_all", "allow_all"),
                        ("allowed_groups", "allowed_groups"), ("admin_groups", "admin_groups"),
                        ("auth_refresh_age", "refresh_age")):  # fmt: skip
        value = settings.get(key)
        if value not in (None, [], "", {}):
            auth[target] = sorted(value, key=str) if isinstance(value, (list, set)) else value


def _external(z2jh, notes: list, name: str) -> dict:
    """Any other class: its section and its parents', as `settings`."""
    facts = class_facts(name)
    if facts is None:  # not installed here: check-config says so; the settings are kept as written
        section = SECTIONS.get(name) or name.replace(":", ".").rsplit(".", 1)[-1]
        facts = section, section.endswith("OAuthenticator")
    section, oauth = facts
    parents = ["Authenticator", *(["OAuthenticator"] if oauth else [])]
    merged: dict[str, Any] = {}
    auth: dict[str, Any] = {"provider": "external", "class": name}
    for path, values in _sections(z2jh, [*parents, section]):
        for key, value in values.items():
            if str(key)[:1].isupper() and isinstance(value, dict):
                continue  # a nested section, which the original never read (said elsewhere)
            z2jh.get(f"{path}.{key}")
            if _SECRET.search(str(key)):
                variable = "OAUTH_CLIENT_SECRET" if key == "client_secret" else f"AUTH_{str(key).upper()}"
                auth.setdefault("settings_from_env", {})[key] = variable
                _note(notes, z2jh, f"{path}.{key}", f"a secret: not copied; put it in ${variable} "
                      f"(auth.settings_from_env.{key})")  # fmt: skip
            else:
                merged[key] = copy.deepcopy(value)
    _common(auth, merged)
    settings = {k: v for k, v in merged.items() if k not in _FIRST_CLASS}
    if settings:
        auth["settings"] = settings
    if name == "null":
        _note(notes, z2jh, CLASS_PATH, "null (NullAuthenticator, as BinderHub runs it): nobody logs in "
              "through the hub; BinderHub makes users and tokens through its API. Kept as auth.provider "
              "external, class null")  # fmt: skip
    elif name == "dummy":
        _note(notes, z2jh, CLASS_PATH, "dummy (DummyAuthenticator, zero-to-jupyterhub's default): anyone may "
              "log in with any name and any password unless one is set. Kept as it was; choose a real "
              "provider before opening the hub")  # fmt: skip
    return auth


def _ours(z2jh, notes: list, provider: str) -> dict:
    """GitHub, CILogon and generic OAuth: our providers, with their own sections."""
    parents = _sections(z2jh, ["Authenticator", "OAuthenticator"])
    own = _sections(z2jh, [_CLASS[provider]])
    settings = {k: v for _, values in parents + own for k, v in values.items()}
    auth: dict[str, Any] = {"provider": provider}
    if settings.get("client_id"):
        auth["client_id"] = settings["client_id"]
    _common(auth, settings)
    if settings.get("oauth_callback_url"):
        auth["callback_url"] = settings["oauth_callback_url"]
    if provider == "github":
        auth["github"] = {"allowed_organizations": _listed(settings.get("allowed_organizations") or [])}
    elif provider == "cilogon":
        auth["cilogon"] = {"idps": copy.deepcopy(settings.get("idps") or settings.get("allowed_idps") or {})}
    else:
        issuer = _address(z2jh, notes, settings.get("authorize_url"))
        oidc: dict[str, Any] = {
            "discovery_url": f"{issuer.scheme}://{issuer.netloc}/.well-known/openid-configuration",
            "username_claim": settings.get("username_claim") or settings.get("username_key") or "preferred_username",
        }
        _note(notes, z2jh, "hub.config.GenericOAuthenticator.authorize_url",
              f"converted to discovery_url {oidc['discovery_url']}: check it")  # fmt: skip
        groups = settings.get("auth_state_groups_key") or settings.get("claim_groups_key")
        if groups == "scope":
            oidc["groups_from_scopes"] = True
        elif isinstance(groups, str):
            oidc["groups_claim"] = groups.removeprefix("oauth_user.")
        if settings.get("scope"):
            oidc["scopes"] = _listed(settings["scope"])
        auth["oidc"] = oidc
    known = {"client_id", "oauth_callback_url", "allowed_organizations", "allowed_idps", "idps", "authorize_url",
             "token_url", "userdata_url", "username_claim", "username_key", "auth_state_groups_key",
             "claim_groups_key", *_FIRST_CLASS, *_IMPLIED}  # fmt: skip
    for path, values in parents + own:
        for key in values:
            if key in known:
                z2jh.get(f"{path}.{key}")
    return auth


def _listed(value: Any) -> Any:
    """A list copied; anything else as it is, for check-config to name."""
    return list(value) if isinstance(value, (list, tuple, set)) else value


def _address(z2jh, notes: list, value: Any):
    """`hub.config.GenericOAuthenticator.authorize_url` split; not an address: noted."""
    try:
        if value is None or isinstance(value, str):
            return urlsplit(value or "")
    except ValueError:  # (a bracket left open in an IPv6 address)
        pass
    _note(notes, z2jh, "hub.config.GenericOAuthenticator.authorize_url", f"not an address: {shown(value)}")
    return urlsplit("")


def _staff(z2jh, notes: list, auth: dict) -> None:
    """2i2c's engineers as hub admins (basehub's extraConfig reads these settings)."""
    if not z2jh.get("custom.2i2c.add_staff_user_ids_to_admin_users"):
        return
    kind = z2jh.get("custom.2i2c.add_staff_user_ids_of_type")
    staff = z2jh.get(f"custom.2i2c.staff_{kind}_ids")
    if staff and not isinstance(staff, list):
        _note(notes, z2jh, f"custom.2i2c.staff_{kind}_ids", "not a list of ids: not converted")
    elif staff:
        admins = auth.get("admin_users", [])
        both = [*(admins if isinstance(admins, list) else [admins]), *staff]
        auth["admin_users"] = sorted({repr(x): x for x in both}.values(), key=str)  # (ids of any type)
    else:
        _note(notes, z2jh, "custom.2i2c.add_staff_user_ids_to_admin_users",
              f"2i2c's staff (custom.2i2c.staff_{kind}_ids, in basehub's values.yaml, not among these "
              "files) were hub admins: add them to auth.admin_users, or convert with basehub's "
              "values.yaml as the chart's values")  # fmt: skip


def _roles(z2jh, notes: list) -> list[dict]:
    """hub.loadRoles (name -> role) and JupyterHub.load_roles (a list), as `roles:`."""
    found: list[tuple[str, Any]] = []
    load_roles = z2jh.get("hub.loadRoles") or {}
    if isinstance(load_roles, dict):
        for key, spec in load_roles.items():
            found.append(
                (f"hub.loadRoles.{key}", {"name": key} | spec if isinstance(spec, dict) else spec or {"name": key})
            )
    else:
        _note(notes, z2jh, "hub.loadRoles", "not a mapping of role names to roles: not converted")
    listed = z2jh.get("hub.config.JupyterHub.load_roles") or []
    if isinstance(listed, list):
        found += [(f"hub.config.JupyterHub.load_roles[{i}]", spec) for i, spec in enumerate(listed)]
    else:
        _note(notes, z2jh, "hub.config.JupyterHub.load_roles", "not a list of roles: not converted")
    roles = []
    for path, spec in found:
        if not isinstance(spec, dict):
            _note(notes, z2jh, path, "not a role (a mapping of name, scopes, users, groups, services)")
            continue
        role = {"name": spec.get("name")}
        for key, value in spec.items():
            if key in ROLE_KEYS and value not in (None, ""):
                role[key] = copy.deepcopy(value)
            elif key != "name":
                _note(notes, z2jh, f"{path}.{key}", "not a role's setting: not converted")
        services = role.get("services") or []
        services = services if isinstance(services, list) else []  # (not a list: check-config names it)
        for service in [s for s in services if s not in OWN_SERVICES]:
            _note(notes, z2jh, f"{path}.services", f"{shown(service)} is one of the chart's hub.services, "
                  "which stay in the chart's values: taken out of the role")  # fmt: skip
        if "services" in role and isinstance(role["services"], list):
            role["services"] = [s for s in services if s in OWN_SERVICES]
            if not role["services"]:
                del role["services"]
        roles.append(role)
    return roles
