"""`twoi2c-hub convert values.yaml [more.yaml ...]`: an existing zero-to-jupyterhub hub's
Helm values as a community config.

The values files are layered as Helm layers them (maps merged key by key, anything else
replaced by the later file, `null` removing a key); 2i2c's basehub layout, with the
zero-to-jupyterhub values under `jupyterhub:` and its own under `jupyterhub.custom`, is
read too. What is converted:

- `singleuser.profileList`, unchanged (its `allowed_groups` mean here what they mean in
  2i2c's hubs), with the `singleuser` defaults (image, CPU, memory, extra resources,
  node selector) under each profile, as KubeSpawner applies them; without a profile list,
  one profile made of those defaults;
- the authenticator (GitHub organisations and teams, CILogon identity providers, generic
  OAuth) and its allow and admin rules; the client secret is never copied: the config
  names the environment variable to put it in;
- the idle culler, the default URL and start timeout, users' environment;
- 2i2c's homepage fields, admin-only environment and volume mounts, anonymised usernames.

Everything else is listed with its path, never silently dropped: Python in
`hub.extraConfig`, deployment settings (proxy, ingress, storage, scheduling, images of
the hub itself) that stay in the chart's values, and whatever this does not know.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

_MISSING = object()


def merge(layers: list[dict]) -> dict:
    """Helm's layering of values files: maps merged, the rest replaced, null removes."""
    merged: dict = {}
    for layer in layers:
        merged = _merged(merged, layer or {})
    return merged


def _merged(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass
class Note:
    path: str
    what: str

    def __str__(self) -> str:
        return f"{self.path}: {self.what}"


class Values:
    """The merged values, and which of their paths were read."""

    def __init__(self, data: dict, prefix: str = ""):
        self.data, self.prefix, self.read = data, prefix, set()

    def peek(self, path: str, default: Any = None) -> Any:
        """The value at `path`, not counted as read (a map only partly converted)."""
        node: Any = self.data
        for key in path.split("."):
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node

    def get(self, path: str, default: Any = None) -> Any:
        """The value at `path`, counted as converted (all of it, if a map)."""
        node = self.peek(path, _MISSING)
        if node is _MISSING:
            return default
        self.read.add(path)
        return node

    def unread(self) -> list[str]:
        """The leaf paths nothing read (a read map counts for all beneath it)."""
        found: list[str] = []

        def walk(node: Any, path: str) -> None:
            if path and any(path == r or path.startswith(r + ".") for r in self.read):
                return
            if isinstance(node, dict) and node:
                for key, value in node.items():
                    walk(value, f"{path}.{key}" if path else str(key))
            else:
                found.append(path)

        walk(self.data, "")
        return found


AUTHENTICATORS = {
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
# settings the converted config does not need: what it sets itself, or implies
_IMPLIED = ("enable_auth_state", "manage_groups", "populate_teams_in_auth_state", "scope", "userdata_params")

# where KubeSpawner reads each singleuser default from (z2jh's jupyterhub_config.py)
SINGLEUSER_DEFAULTS = {
    "memory.guarantee": "mem_guarantee",
    "memory.limit": "mem_limit",
    "cpu.guarantee": "cpu_guarantee",
    "cpu.limit": "cpu_limit",
    "extraResource.limits": "extra_resource_limits",
    "extraResource.guarantees": "extra_resource_guarantees",
    "nodeSelector": "node_selector",
}


def convert(layers: list[dict], name: str | None = None) -> tuple[dict, list[Note]]:
    """(the community config as data, what was not converted)."""
    merged = merge(layers)
    basehub = isinstance(merged.get("jupyterhub"), dict)
    z2jh = Values(merged["jupyterhub"] if basehub else merged, "jupyterhub." if basehub else "")
    notes: list[Note] = []
    config: dict[str, Any] = {"hub": _hub(z2jh, name)}
    config["auth"] = _auth(z2jh, notes)
    config["profiles"] = _profiles(z2jh)
    config["spawner"] = _spawner(z2jh)
    config["culling"] = _culling(z2jh)
    for path in z2jh.unread():
        notes.append(Note(z2jh.prefix + path, _why_not(path)))
    if basehub:
        for key in merged:
            if key != "jupyterhub":
                notes.append(Note(key, "another chart's values (basehub's subcharts): not part of the hub's config"))
    return config, notes


def _why_not(path: str) -> str:
    if path.startswith("hub.extraConfig"):
        return "Python code: not converted; see what it did and use the matching setting, if any"
    if path.startswith(("proxy.", "ingress.", "scheduling.", "prePuller.", "singleuser.storage", "hub.db",
                        "hub.image", "hub.resources", "hub.networkPolicy", "singleuser.networkPolicy", "rbac.",
                        "hub.service", "debug.", "global.", "imagePullSecret", "hub.extraVolume")):  # fmt: skip
        return "a deployment setting: keep it in the chart's values (deploy/kubernetes)"
    if path.endswith(".client_secret"):
        return "a secret: not copied; put it in $OAUTH_CLIENT_SECRET (auth.client_secret_env)"
    if "secret" in path.lower() or "token" in path.lower():
        return "a secret: not copied; give it to the hub through its environment"
    return "not converted (no matching setting)"


def _hub(z2jh: Values, name: str | None) -> dict:
    home = "custom.homepage.templateVars."
    hub: dict[str, Any] = {"name": name or z2jh.get(home + "org.name") or "JupyterHub"}
    for key in ("url", "logo_url"):
        if z2jh.peek(home + "org." + key):
            hub[key] = z2jh.get(home + "org." + key)
    for role, target in (("operated_by", "operated_by"), ("designed_by", "designed_by"), ("funded_by", "funders")):
        if z2jh.peek(f"{home}{role}.name"):
            organisation = {k: z2jh.get(f"{home}{role}.{k}") for k in ("name", "url") if z2jh.peek(f"{home}{role}.{k}")}
            hub[target] = [organisation] if target == "funders" else organisation
    z2jh.get(home + "enabled")
    return hub


def _auth(z2jh: Values, notes: list[Note]) -> dict:
    cls = z2jh.peek("hub.config.JupyterHub.authenticator_class")
    provider = AUTHENTICATORS.get(str(cls)) if cls else None
    if provider is None:
        return {"provider": "demo"}  # (the class is listed as not converted)
    z2jh.get("hub.config.JupyterHub.authenticator_class")
    common = z2jh.peek("hub.config.Authenticator", {}) or {}
    section = z2jh.peek(f"hub.config.{_CLASS[provider]}", {}) or {}
    settings = {**common, **section}
    auth: dict[str, Any] = {"provider": provider}
    for key in ("client_id", "allowed_users", "admin_users", "blocked_users", "allow_all", "allowed_groups",
                "admin_groups"):  # fmt: skip
        if settings.get(key) not in (None, [], ""):
            auth[key] = sorted(settings[key]) if isinstance(settings[key], (list, set)) else settings[key]
    if settings.get("oauth_callback_url"):
        auth["callback_url"] = settings["oauth_callback_url"]
    if "auth_refresh_age" in settings:
        auth["refresh_age"] = settings["auth_refresh_age"]
    if z2jh.get("custom.auth.anonymizeUsername"):
        auth["anonymize_usernames"] = True
    if provider == "github":
        auth["github"] = {"allowed_organizations": list(settings.get("allowed_organizations") or [])}
    elif provider == "cilogon":
        auth["cilogon"] = {"idps": copy.deepcopy(settings.get("allowed_idps") or {})}
    else:
        issuer = urlsplit(settings.get("authorize_url") or "")
        oidc: dict[str, Any] = {
            "discovery_url": f"{issuer.scheme}://{issuer.netloc}/.well-known/openid-configuration",
            "username_claim": settings.get("username_claim") or settings.get("username_key") or "preferred_username",
        }
        notes.append(Note(f"{z2jh.prefix}hub.config.GenericOAuthenticator.authorize_url",
                          f"converted to discovery_url {oidc['discovery_url']}: check it"))  # fmt: skip
        groups = settings.get("auth_state_groups_key") or settings.get("claim_groups_key")
        if groups == "scope":
            oidc["groups_from_scopes"] = True
        elif isinstance(groups, str):
            oidc["groups_claim"] = groups.removeprefix("oauth_user.")
        if settings.get("scope"):
            oidc["scopes"] = list(settings["scope"])
        auth["oidc"] = oidc
    known = {"client_id", "allowed_users", "admin_users", "blocked_users", "allow_all",
             "allowed_groups", "admin_groups", "oauth_callback_url", "auth_refresh_age", "allowed_organizations",
             "allowed_idps", "authorize_url", "token_url", "userdata_url", "username_claim", "username_key",
             "auth_state_groups_key", "claim_groups_key", *_IMPLIED}  # fmt: skip
    for where, values in ((f"hub.config.{_CLASS[provider]}", section), ("hub.config.Authenticator", common)):
        for key in values:
            if key in known:
                z2jh.get(f"{where}.{key}")
    return auth


def _defaults(z2jh: Values) -> dict:
    """The singleuser defaults, as KubeSpawner settings."""
    defaults: dict[str, Any] = {}
    image, tag = z2jh.get("singleuser.image.name"), z2jh.get("singleuser.image.tag")
    if image:
        defaults["image"] = f"{image}:{tag}" if tag else image
    for path, setting in SINGLEUSER_DEFAULTS.items():
        value = z2jh.get(f"singleuser.{path}")
        if value not in (None, {}, ""):
            defaults[setting] = copy.deepcopy(value)
    return defaults


def _profiles(z2jh: Values) -> list[dict]:
    defaults = _defaults(z2jh)
    profiles = copy.deepcopy(z2jh.get("singleuser.profileList") or [])
    if not profiles:
        return [{"display_name": "Default server", "slug": "default", "kubespawner_override": defaults}] if (
            defaults) else []  # fmt: skip
    for profile in profiles:
        override = profile.setdefault("kubespawner_override", {})
        for setting, value in defaults.items():
            override.setdefault(setting, copy.deepcopy(value))
    return profiles


def _spawner(z2jh: Values) -> dict:
    spawner: dict[str, Any] = {"kind": "kube"}
    if z2jh.get("singleuser.defaultUrl"):
        spawner["default_url"] = z2jh.get("singleuser.defaultUrl")
    if z2jh.get("singleuser.startTimeout"):
        spawner["start_timeout"] = z2jh.get("singleuser.startTimeout")
    for source, target in (("hub.concurrentSpawnLimit", "concurrent_spawn_limit"),
                           ("hub.activeServerLimit", "active_server_limit")):  # fmt: skip
        if z2jh.peek(source) is not None:
            spawner[target] = z2jh.get(source) or 0
    for source, target in (("singleuser.extraEnv", "user_environment"),
                           ("custom.singleuserAdmin.extraEnv", "admin_environment")):  # fmt: skip
        environment = {}
        for key, value in (z2jh.peek(source) or {}).items():
            if isinstance(value, str):  # (a valueFrom is listed as not converted)
                environment[key] = z2jh.get(f"{source}.{key}")
        if environment:
            spawner[target] = environment
    mounts = z2jh.get("custom.singleuserAdmin.extraVolumeMounts")
    if mounts:
        spawner["admin_volume_mounts"] = list(mounts.values()) if isinstance(mounts, dict) else list(mounts)
    return spawner


def _culling(z2jh: Values) -> dict:
    culling: dict[str, Any] = {"enabled": bool(z2jh.get("cull.enabled", True))}
    for key, target in (("timeout", "timeout"), ("every", "every"), ("maxAge", "max_age"),
                        ("users", "cull_users"), ("adminUsers", "cull_admin_users"),
                        ("concurrency", "concurrency")):  # fmt: skip
        if z2jh.peek(f"cull.{key}") is not None:
            culling[target] = z2jh.get(f"cull.{key}")
    return culling
