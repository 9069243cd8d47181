"""`twoi2c-hub convert values.yaml [more.yaml ...]`: an existing zero-to-jupyterhub hub's
Helm values as a community config.

The values files are read and layered exactly as Helm layers them, and the
zero-to-jupyterhub values found in whichever layout keeps them (`helm.py`). What is
converted:

- `singleuser.profileList`, unchanged (its `allowed_groups` mean here what they mean in
  2i2c's hubs), with the `singleuser` defaults (image, CPU, memory, extra resources,
  node selector) under each profile as KubeSpawner applies them (a map merged into the
  profile's own, key by key); without a profile list, one profile made of those defaults;
- z2jh's `hub.config.KubeSpawner` and `hub.config.Spawner` sections, which override the
  `singleuser` values as they do on the original hub (profiles and spawner: `servers.py`);
- the authenticator (GitHub organisations and teams, CILogon identity providers, generic
  OAuth) and its allow and admin rules; the client secret is never copied: the config
  names the environment variable to put it in (`hub_auth.py`);
- the idle culler, the default URL and start timeout, users' environment, the scopes of
  servers' tokens;
- 2i2c's homepage fields, admin-only environment and volume mounts, anonymised usernames.

Settings the chart itself applies to every server and that have no community-config
setting (extra files, tolerations, init containers, environment KubeSpawner must fill in
itself, ...) stay in the chart's values: our deployment is the same chart, so the servers
get them as before. Everything else is listed with its path, never silently dropped:
Python in `hub.extraConfig`, deployment settings (proxy, ingress, storage, scheduling,
images of the hub itself) that stay in the chart's values, and whatever this does not
know. Where the original itself could not work (a config section nested inside another,
an environment placeholder KubeSpawner cannot fill), a note says so.
"""

from __future__ import annotations

import copy
from typing import Any

from .helm import Z2JH_DEFAULTS, at, helm_values, merge, placed, z2jh_path
from .hub_auth import auth_and_roles
from .servers import CHART, profile_list, spawner_section
from .values import Note, Values


def convert(layers: list[dict], name: str | None = None, chart_layers: int = 0) -> tuple[dict, list[Note]]:
    """(the community config as data, what was not converted).

    `layers`: the chart's own values (the first `chart_layers`, e.g. basehub's values.yaml),
    then the hub's values files in the order Helm is given them."""
    path = z2jh_path(merge(layers))
    chart = [placed(path, copy.deepcopy(Z2JH_DEFAULTS)), *layers[:chart_layers]]
    merged = helm_values(chart + list(layers[chart_layers:]), len(chart))
    z2jh = Values(at(merged, path) if isinstance(at(merged, path), dict) else {}, f"{path}." if path else "")
    notes: list[Note] = []
    _original_problems(z2jh, notes)
    config: dict[str, Any] = {"hub": _hub(z2jh, name)}
    config.update(auth_and_roles(z2jh, notes))  # auth: and roles: (hub_auth.py)
    config["profiles"] = profile_list(z2jh, notes)
    config["spawner"] = spawner_section(z2jh, notes)
    config["culling"] = _culling(z2jh)
    for leaf in z2jh.unread():
        notes.append(Note(z2jh.prefix + leaf, _why_not(leaf)))
    parent = ""
    for key in path.split(".") if path else []:  # the wrapping charts' own values, beside the hub's
        for other in at(merged, parent) or {}:
            if other != key:
                notes.append(
                    Note(
                        f"{parent}.{other}" if parent else other,
                        "another chart's values (the wrapping chart or its subcharts): not part of the hub's config",
                    )
                )
        parent = f"{parent}.{key}" if parent else key
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
    if path.startswith(("hub.config.KubeSpawner.", "hub.config.Spawner.")):
        return f"a server setting z2jh's hub.config applies: {CHART}"
    return "not converted (no matching setting)"


def _original_problems(z2jh: Values, notes: list[Note]) -> None:
    """What keeps the original hub from working as written (said, not mended)."""
    hub_config = z2jh.peek("hub.config")
    for section, settings in (hub_config or {}).items() if isinstance(hub_config, dict) else []:
        if not str(section)[:1].isupper():
            notes.append(
                Note(
                    f"{z2jh.prefix}hub.config.{section}",
                    "the original hub does not start: z2jh stops "
                    "at a hub.config section that is not a class name (misplaced?)",
                )
            )
            z2jh.get(f"hub.config.{section}")
            continue
        for key, value in settings.items() if isinstance(settings, dict) else []:
            if str(key)[:1].isupper() and isinstance(value, dict):
                notes.append(
                    Note(
                        f"{z2jh.prefix}hub.config.{section}.{key}",
                        f"a config section nested inside hub.config.{section}: the original hub never "
                        f"reads it (traitlets reads hub.config.{key} at the top level), so these settings "
                        f"were not in effect; not converted",
                    )
                )
                z2jh.get(f"hub.config.{section}.{key}")


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


# the community config's own culling defaults (CullingSection): a value equal to its
# default is left out, to keep the converted file short
CULLING_DEFAULTS = {
    "timeout": 3600,
    "every": 0,
    "max_age": 0,
    "cull_users": False,
    "cull_admin_users": True,
    "concurrency": 10,
}


def _culling(z2jh: Values) -> dict:
    culling: dict[str, Any] = {"enabled": bool(z2jh.get("cull.enabled", True))}
    for key, target in (
        ("timeout", "timeout"),
        ("every", "every"),
        ("maxAge", "max_age"),
        ("users", "cull_users"),
        ("adminUsers", "cull_admin_users"),
        ("concurrency", "concurrency"),
    ):
        value = z2jh.get(f"cull.{key}")
        if value is not None and value != CULLING_DEFAULTS[target]:
            culling[target] = value
    return culling
