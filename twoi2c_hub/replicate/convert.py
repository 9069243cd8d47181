"""`twoi2c-hub convert values.yaml [more.yaml ...]`: an existing zero-to-jupyterhub hub's
Helm values as a community config.

The values files are layered exactly as Helm layers them: the files given are merged in
order (maps key by key, anything else replaced by the later file, a `null` included), then
coalesced with the chart's own values (`--chart-values`, and zero-to-jupyterhub's defaults
for the settings read here), where a `null` left standing removes the chart's default. The
zero-to-jupyterhub values are found where each layout keeps them: at the top (the chart
itself), under `jupyterhub:` (2i2c's basehub, or any chart that wraps z2jh), under
`basehub: jupyterhub:` (2i2c's daskhub) or `daskhub: jupyterhub:` (a chart wrapping
daskhub). What is converted:

- `singleuser.profileList`, unchanged (its `allowed_groups` mean here what they mean in
  2i2c's hubs), with the `singleuser` defaults (image, CPU, memory, extra resources,
  node selector) under each profile as KubeSpawner applies them (a map merged into the
  profile's own, key by key); without a profile list, one profile made of those defaults;
- z2jh's `hub.config.KubeSpawner` and `hub.config.Spawner` sections, which override the
  `singleuser` values as they do on the original hub;
- the authenticator (GitHub organisations and teams, CILogon identity providers, generic
  OAuth) and its allow and admin rules; the client secret is never copied: the config
  names the environment variable to put it in;
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
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .hub_auth import auth_and_roles

_MISSING = object()


class ConvertError(Exception):
    """A values file that cannot be converted; the message is one line, naming the file."""


# --- reading -----------------------------------------------------------------------------

# Helm (`{{ .Values.x }}`, `{{- if }}`) and Jinja (`{{ name }}`, `{% if %}`) templates; not
# KubeSpawner's `{{` escape of a literal brace (`'{{JUPYTER_IMAGE_SPEC}}'`), nor Python code
# in a block scalar (hub.extraConfig)
_TEMPLATE = re.compile(r"\{%|\{\{-|\{\{\s+[.$\w]")


def read_values(path: str | Path) -> dict:
    """One values file as data; a template or anything but a YAML map is refused with a
    `ConvertError` naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConvertError(f"{path}: cannot be read ({e})") from None
    templated = (
        f"{path}: a template (it has {{{{ ... }}}} or {{% ... %}}), not values: render it first "
        "(helm template, or your deployer), then convert the values it renders"
    )
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        if _TEMPLATE.search(text):
            raise ConvertError(templated) from None
        raise ConvertError(f"{path}: not YAML ({' '.join(str(e).split())})") from None
    if node is not None and _templated(node):
        raise ConvertError(templated)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConvertError(f"{path}: not a map of values (the file holds a {type(data).__name__})")
    return data


def _templated(node: yaml.Node) -> bool:
    """A template expression in a key or in a value that is not a block of text."""
    if isinstance(node, yaml.ScalarNode):
        return node.style not in ("|", ">") and bool(_TEMPLATE.search(node.value))
    if isinstance(node, yaml.MappingNode):
        return any(_templated(k) or _templated(v) for k, v in node.value)
    if isinstance(node, yaml.SequenceNode):
        return any(_templated(v) for v in node.value)
    return False


# --- layering ----------------------------------------------------------------------------


def merge(layers: list[dict]) -> dict:
    """Values layered as one chart's values files are: maps merged, the rest replaced,
    null removes at once. (The layering of `helm -f` files is `helm_values`.)"""
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


def helm_values(layers: list[dict], chart_layers: int = 0) -> dict:
    """What Helm computes from the chart's values (the first `chart_layers`) and the user's
    `-f` files (the rest): the user's files merged in order (a later value replaces, `null`
    included, a map over a map merges), then coalesced with the chart's values, where a
    `null` left standing removes the chart's default."""
    user: dict = {}
    for layer in layers[chart_layers:]:
        user = _user_merged(user, layer or {})
    return _coalesced(user, merge(layers[:chart_layers]))


def _user_merged(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _user_merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _coalesced(user: dict, chart: dict) -> dict:
    out = copy.deepcopy(chart)
    for key, value in user.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict):
            out[key] = _coalesced(value, out[key] if isinstance(out.get(key), dict) else {})
        else:
            out[key] = copy.deepcopy(value)
    return out


# where each chart keeps zero-to-jupyterhub's values: z2jh itself, a chart wrapping it
# (2i2c's basehub, a university's course chart), 2i2c's daskhub, a chart wrapping daskhub
Z2JH_PATHS = ("", "jupyterhub", "basehub.jupyterhub", "daskhub.jupyterhub")

# zero-to-jupyterhub's own defaults (its values.yaml) for what is read here, below every
# other layer: the original hub has them whether or not its files repeat them
Z2JH_DEFAULTS = {
    "singleuser": {"memory": {"guarantee": "1G"}, "startTimeout": 300},
    "hub": {"concurrentSpawnLimit": 64},
    "cull": {
        "enabled": True,
        "users": False,
        "adminUsers": True,
        "timeout": 3600,
        "every": 600,
        "concurrency": 10,
        "maxAge": 0,
    },
}


def at(data: Any, path: str, default: Any = None) -> Any:
    """The value at a dotted path ('' is the whole)."""
    for key in path.split(".") if path else []:
        if not isinstance(data, dict) or key not in data:
            return default
        data = data[key]
    return data


def z2jh_path(values: dict) -> str:
    """Where the zero-to-jupyterhub values are in `values`: one of `Z2JH_PATHS`."""
    for path in Z2JH_PATHS:
        node = at(values, path)
        if isinstance(node, dict) and ("hub" in node or "singleuser" in node):
            return path
    for path in reversed(Z2JH_PATHS[1:]):
        if isinstance(at(values, path), dict):
            return path
    return ""


def _placed(path: str, values: dict) -> dict:
    for key in reversed(path.split(".") if path else []):
        values = {key: values}
    return values


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


# KubeSpawner settings the singleuser defaults give, and where z2jh's jupyterhub_config.py
# reads each from; each is set on c.KubeSpawner (hub.config.KubeSpawner replaces it,
# hub.config.Spawner does not)
SINGLEUSER_DEFAULTS = {
    "memory.guarantee": "mem_guarantee",
    "memory.limit": "mem_limit",
    "cpu.guarantee": "cpu_guarantee",
    "cpu.limit": "cpu_limit",
    "extraResource.limits": "extra_resource_limits",
    "extraResource.guarantees": "extra_resource_guarantees",
    "nodeSelector": "node_selector",
}
# what the chart applies to every server and the community config has no setting for:
# kept in the chart's values, where our deployment's chart applies it just the same
SERVER_SETTINGS_KEPT = {
    "extraFiles": "files mounted into every server (the chart makes the Secret they come from)",
    "extraTolerations": "tolerations of every server (with scheduling.userPods.tolerations)",
    "initContainers": "init containers of every server",
    "extraContainers": "containers beside every server",
    "extraPodConfig": "more of every server's pod spec",
    "lifecycleHooks": "every server's lifecycle hooks",
    "cmd": "the command every server runs",
    "cloudMetadata": "every server's access to the cloud's metadata server",
    "serviceAccountName": "every server's service account",
    "uid": "the user every server runs as",
    "fsGid": "every server's file-system group",
    "extraLabels": "labels of every server's pod",
    "extraAnnotations": "annotations of every server's pod",
    "extraNodeAffinity": "every server's node affinity",
    "extraPodAffinity": "every server's pod affinity",
    "extraPodAntiAffinity": "every server's pod anti-affinity",
    "allowPrivilegeEscalation": "every server's privilege escalation",
    "image.pullPolicy": "when servers' images are pulled",
    "image.pullSecrets": "the secrets servers' images are pulled with",
    "events": "servers' events on the spawn page",
    "podNameTemplate": "the names of servers' pods",
    "networkTools": "the image of the init container that blocks the metadata server",
}
CHART = "keep it in the chart's values (deploy/kubernetes), which apply it as before"
# the fields KubeSpawner 7 fills in an environment value (its _expand_user_properties)
KUBESPAWNER_FIELDS = {
    "userid",
    "unescaped_username",
    "unescaped_servername",
    "hubnamespace",
    "username",
    "servername",
    "user_server",
    "safe_username",
    "safe_servername",
    "safe_user_server",
    "escaped_username",
    "escaped_servername",
    "escaped_user_server",
    "pod_name",
    "pvc_name",
    "namespace",
}


def convert(layers: list[dict], name: str | None = None, chart_layers: int = 0) -> tuple[dict, list[Note]]:
    """(the community config as data, what was not converted).

    `layers`: the chart's own values (the first `chart_layers`, e.g. basehub's values.yaml),
    then the hub's values files in the order Helm is given them."""
    path = z2jh_path(merge(layers))
    chart = [_placed(path, copy.deepcopy(Z2JH_DEFAULTS)), *layers[:chart_layers]]
    merged = helm_values(chart + list(layers[chart_layers:]), len(chart))
    z2jh = Values(at(merged, path) if isinstance(at(merged, path), dict) else {}, f"{path}." if path else "")
    notes: list[Note] = []
    _original_problems(z2jh, notes)
    config: dict[str, Any] = {"hub": _hub(z2jh, name)}
    config.update(auth_and_roles(z2jh, notes))  # auth: and roles: (hub_auth.py)
    config["profiles"] = _profiles(z2jh, notes)
    config["spawner"] = _spawner(z2jh, notes)
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


def _kube_setting(
    z2jh: Values, notes: list[Note], trait: str, singleuser: str | None = None, section: str = "KubeSpawner"
) -> Any:
    """What a KubeSpawner ends up with for `trait` on the original hub: z2jh sets
    `singleuser.<...>` on c.<section>, then `hub.config` sections replace their keys, and
    KubeSpawner's own section outranks Spawner's. The outranked values are noted."""
    order = [f"hub.config.KubeSpawner.{trait}"]
    if section == "KubeSpawner":
        order += [f"singleuser.{singleuser}" if singleuser else "", f"hub.config.Spawner.{trait}"]
    else:
        order += [f"hub.config.Spawner.{trait}", f"singleuser.{singleuser}" if singleuser else ""]
    found = [p for p in order if p and z2jh.peek(p) is not None]
    for outranked in found[1:]:
        z2jh.get(outranked)
        notes.append(Note(z2jh.prefix + outranked, f"outranked by {z2jh.prefix}{found[0]}, as on the original hub"))
    return z2jh.get(found[0]) if found else None


def _image(z2jh: Values, notes: list[Note]) -> str | None:
    image = z2jh.peek("hub.config.KubeSpawner.image")
    name, tag = z2jh.peek("singleuser.image.name"), z2jh.peek("singleuser.image.tag")
    if image:
        for path in ("singleuser.image.name", "singleuser.image.tag"):
            if z2jh.get(path):
                notes.append(Note(z2jh.prefix + path, f"outranked by {z2jh.prefix}hub.config.KubeSpawner.image"))
        return z2jh.get("hub.config.KubeSpawner.image")
    if not name:
        return None  # (a tag alone goes with the chart's default image: listed as not converted)
    z2jh.get("singleuser.image.name")
    return f"{name}:{z2jh.get('singleuser.image.tag')}" if tag else name


def _defaults(z2jh: Values, notes: list[Note]) -> dict:
    """The singleuser defaults, as KubeSpawner settings."""
    defaults: dict[str, Any] = {}
    image = _image(z2jh, notes)
    if image:
        defaults["image"] = image
    for path, setting in SINGLEUSER_DEFAULTS.items():
        value = _kube_setting(z2jh, notes, setting, path)
        if value not in (None, {}, ""):
            defaults[setting] = copy.deepcopy(value)
    return defaults


def recursive_update(target: dict, new: dict) -> None:
    """KubeSpawner 7.1's merge of a profile's map into the spawner's (kubespawner.utils):
    maps merged key by key, None removes."""
    for key, value in new.items():
        if isinstance(value, dict):
            if not isinstance(target.get(key), dict):
                target[key] = {}
            recursive_update(target[key], value)
        elif value is None:
            target.pop(key, None)
        else:
            target[key] = value


def _profiles(z2jh: Values, notes: list[Note]) -> list[dict]:
    defaults = _defaults(z2jh, notes)
    profiles = copy.deepcopy(_kube_setting(z2jh, notes, "profile_list", "profileList") or [])
    if not profiles:
        return (
            [{"display_name": "Default server", "slug": "default", "kubespawner_override": defaults}]
            if (defaults)
            else []
        )
    for profile in profiles:
        override = profile.setdefault("kubespawner_override", {})
        for setting, value in defaults.items():
            if isinstance(value, dict) and isinstance(override.get(setting), dict):
                # KubeSpawner merges a map into the default (_apply_overrides), it does not replace it
                merged = copy.deepcopy(value)
                recursive_update(merged, override[setting])
                override[setting] = merged
            else:
                override.setdefault(setting, copy.deepcopy(value))
    return profiles


def _spawner(z2jh: Values, notes: list[Note]) -> dict:
    spawner: dict[str, Any] = {"kind": "kube"}
    default_url = _kube_setting(z2jh, notes, "default_url", "defaultUrl", section="Spawner")
    if default_url:
        spawner["default_url"] = default_url
    start_timeout = _kube_setting(z2jh, notes, "start_timeout", "startTimeout")
    if start_timeout:
        spawner["start_timeout"] = start_timeout
    scopes = _kube_setting(z2jh, notes, "oauth_client_allowed_scopes", section="Spawner")
    if scopes:
        spawner["oauth_client_allowed_scopes"] = list(scopes)
    for source, target in (
        ("hub.concurrentSpawnLimit", "concurrent_spawn_limit"),
        ("hub.activeServerLimit", "active_server_limit"),
    ):
        if z2jh.peek(source) is not None:
            spawner[target] = z2jh.get(source) or 0
    environment = _environment(z2jh, notes)
    if environment:
        spawner["user_environment"] = environment
    admin = {}
    for key, value in (z2jh.peek("custom.singleuserAdmin.extraEnv") or {}).items():
        if isinstance(value, str):  # (a valueFrom is listed as not converted)
            admin[key] = z2jh.get(f"custom.singleuserAdmin.extraEnv.{key}")
    if admin:
        spawner["admin_environment"] = admin
    mounts = z2jh.get("custom.singleuserAdmin.extraVolumeMounts")
    if mounts:
        spawner["admin_volume_mounts"] = list(mounts.values()) if isinstance(mounts, dict) else list(mounts)
    for key, what in SERVER_SETTINGS_KEPT.items():
        if z2jh.peek(f"singleuser.{key}") not in (None, {}, []):
            z2jh.get(f"singleuser.{key}")
            notes.append(Note(f"{z2jh.prefix}singleuser.{key}", f"{what}: a setting of the chart: {CHART}"))
    if z2jh.peek("singleuser.image.tag") and not z2jh.peek("singleuser.image.name"):
        z2jh.get("singleuser.image.tag")
        notes.append(
            Note(
                f"{z2jh.prefix}singleuser.image.tag",
                "a tag without an image name (the chart's default "
                "image): give the chart's values with --chart-values, or set the image",
            )
        )
    return spawner


def _environment(z2jh: Values, notes: list[Note]) -> dict:
    """Every server's environment as `user_environment`, where it means the same there;
    the rest stays in the chart's values, for KubeSpawner to set as it did."""
    source = next(
        (
            p
            for p in ("hub.config.KubeSpawner.environment", "singleuser.extraEnv", "hub.config.Spawner.environment")
            if z2jh.peek(p)
        ),
        None,
    )
    if source is None:
        return {}
    _kube_setting(z2jh, notes, "environment", "extraEnv")  # (notes what it outranks)
    z2jh.read.discard(source)
    set_by_profiles = _environment_set_by_profiles(z2jh.peek("singleuser.profileList") or [])
    environment = {}
    for key, value in z2jh.peek(source).items():
        path = f"{source}.{key}"
        z2jh.get(path)
        if not isinstance(value, str):
            notes.append(Note(z2jh.prefix + path, f"a value from elsewhere (valueFrom): {CHART}"))
            continue
        fields = _fields(value)
        if fields is None or fields - KUBESPAWNER_FIELDS:
            unknown = _unfillable(fields)
            notes.append(
                Note(
                    z2jh.prefix + path,
                    f"the original hub cannot start a server: KubeSpawner fills {{...}} in environment "
                    f"values and cannot fill {unknown} (KeyError); not converted: write $(NAME) for "
                    f"Kubernetes to fill in another variable, {{{{ }}}} for a literal brace",
                )
            )
        elif fields or "{" in value or "}" in value:
            notes.append(
                Note(
                    z2jh.prefix + path,
                    f"KubeSpawner fills in its placeholders (its {{username}} is a safe slug, not the name): {CHART}",
                )
            )
        elif key in set_by_profiles:
            notes.append(
                Note(z2jh.prefix + path, f"a profile sets it too, and a profile's value wins over it: {CHART}")
            )
        else:
            environment[key] = value
    return environment


def _environment_set_by_profiles(profiles: list) -> set[str]:
    names: set[str] = set()
    for profile in profiles if isinstance(profiles, list) else []:
        overrides = [profile.get("kubespawner_override") or {}]
        for option in (profile.get("profile_options") or {}).values():
            overrides += [c.get("kubespawner_override") or {} for c in (option.get("choices") or {}).values()]
            overrides.append((option.get("unlisted_choice") or {}).get("kubespawner_override") or {})
        for override in overrides:
            if isinstance(override.get("environment"), dict):
                names |= set(override["environment"])
    return names


def _unfillable(fields: set[str] | None) -> str:
    if fields is None:
        return "a lone brace"
    return ", ".join(f"{{{name}}}" for name in sorted(fields - KUBESPAWNER_FIELDS))


def _fields(template: str) -> set[str] | None:
    """The fields `str.format` fills in `template`, or None if it cannot be formatted."""
    try:
        return {re.split(r"[.\[]", f)[0] for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError:
        return None


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
