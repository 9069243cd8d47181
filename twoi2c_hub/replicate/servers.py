"""What every server of the hub gets: the profile list with the `singleuser` defaults
under each profile, and the community config's `spawner:` section.

z2jh sets `singleuser` values on `c.KubeSpawner`, then its `hub.config.KubeSpawner` and
`hub.config.Spawner` sections replace them, KubeSpawner's outranking Spawner's; the
outranked values are noted. The defaults go under each profile as KubeSpawner applies them
(a map merged into the profile's own, key by key). Settings the chart applies to every
server and that have no community-config setting stay in the chart's values, with a note;
an environment value KubeSpawner cannot fill in is noted as a problem of the original hub.
"""

from __future__ import annotations

import copy
import re
import string
from typing import Any

from .values import Note, Values

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
    for path, value, what in (("name", name, "an image name"), ("tag", tag, "an image tag")):
        if not isinstance(value, (str, int, float, type(None))) or isinstance(value, bool):
            z2jh.get(f"singleuser.image.{path}")
            notes.append(Note(f"{z2jh.prefix}singleuser.image.{path}", f"not {what} (text): not converted"))
            return None
    z2jh.get("singleuser.image.name")
    return f"{name}:{z2jh.get('singleuser.image.tag')}" if tag else str(name)


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


def profile_list(z2jh: Values, notes: list[Note]) -> list[dict]:
    """The profiles, each with the singleuser defaults under its own settings; without a
    profile list, one profile made of the defaults (none, if there are none)."""
    defaults = _defaults(z2jh, notes)
    source = z2jh.prefix + (
        "singleuser.profileList"
        if z2jh.peek("hub.config.KubeSpawner.profile_list") is None
        else "hub.config.KubeSpawner.profile_list"
    )
    profiles = copy.deepcopy(_kube_setting(z2jh, notes, "profile_list", "profileList") or [])
    if not isinstance(profiles, list):
        notes.append(Note(source, "not a list of profiles: not converted"))
        profiles = []
    for i, profile in enumerate(profiles):
        if not isinstance(profile, dict):
            notes.append(
                Note(f"{source}[{i}]", "not a profile (a mapping of display_name, kubespawner_override, ...): left out")
            )
    profiles = [profile for profile in profiles if isinstance(profile, dict)]
    if not profiles:
        return (
            [{"display_name": "Default server", "slug": "default", "kubespawner_override": defaults}]
            if (defaults)
            else []
        )
    for profile in profiles:
        override = profile.setdefault("kubespawner_override", {})
        if not isinstance(override, dict):
            continue  # check-config names it: "must be a mapping of KubeSpawner settings to values"
        for setting, value in defaults.items():
            if isinstance(value, dict) and isinstance(override.get(setting), dict):
                # KubeSpawner merges a map into the default (_apply_overrides), it does not replace it
                merged = copy.deepcopy(value)
                recursive_update(merged, override[setting])
                override[setting] = merged
            else:
                override.setdefault(setting, copy.deepcopy(value))
    return profiles


def spawner_section(z2jh: Values, notes: list[Note]) -> dict:
    """The community config's `spawner:`; what stays in the chart's values is noted."""
    spawner: dict[str, Any] = {"kind": "kube"}
    default_url = _kube_setting(z2jh, notes, "default_url", "defaultUrl", section="Spawner")
    if default_url:
        spawner["default_url"] = default_url
    start_timeout = _kube_setting(z2jh, notes, "start_timeout", "startTimeout")
    if start_timeout:
        spawner["start_timeout"] = start_timeout
    scopes = _kube_setting(z2jh, notes, "oauth_client_allowed_scopes", section="Spawner")
    if scopes:
        spawner["oauth_client_allowed_scopes"] = list(scopes) if isinstance(scopes, list) else scopes
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
    for key, value in _mapping(z2jh, notes, "custom.singleuserAdmin.extraEnv").items():
        if isinstance(value, str):  # (a valueFrom is listed as not converted)
            admin[key] = z2jh.get(f"custom.singleuserAdmin.extraEnv.{key}")
    if admin:
        spawner["admin_environment"] = admin
    mounts = z2jh.get("custom.singleuserAdmin.extraVolumeMounts")
    if mounts:
        spawner["admin_volume_mounts"] = list(mounts.values()) if isinstance(mounts, dict) else mounts
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
    for key, value in _mapping(z2jh, notes, source).items():
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


def _environment_set_by_profiles(profiles: Any) -> set[str]:
    names: set[str] = set()
    for profile in _maps(profiles):
        overrides = [profile.get("kubespawner_override")]
        for option in _maps(profile.get("profile_options")):
            overrides += [c.get("kubespawner_override") for c in _maps(option.get("choices"))]
            overrides += [u.get("kubespawner_override") for u in _maps([option.get("unlisted_choice")])]
        for override in _maps(overrides):
            if isinstance(override.get("environment"), dict):
                names |= set(override["environment"])
    return names


def _maps(items: Any) -> list[dict]:
    """The mappings among `items` (a list, or a mapping's values); the rest is check-config's to name."""
    values = items.values() if isinstance(items, dict) else items if isinstance(items, list) else []
    return [item for item in values if isinstance(item, dict)]


def _mapping(z2jh: Values, notes: list[Note], path: str) -> dict:
    """The mapping at `path` ({} if there is none); anything else there is noted, not read."""
    value = z2jh.peek(path)
    if value is None or isinstance(value, dict):
        return value or {}
    z2jh.get(path)
    notes.append(Note(z2jh.prefix + path, "not a mapping of names to values: not converted"))
    return {}


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
