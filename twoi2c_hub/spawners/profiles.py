"""The profile catalog: which servers a person may start, as plain data and pure functions.

The catalog is a list of profiles in KubeSpawner's `profile_list` format (the format of
zero-to-jupyterhub's `singleuser.profileList` and of 2i2c's hubs), so an existing hub's
profile list loads unchanged. It is extended with:

- `allowed_groups` on a profile, on a choice and on the write-in (`unlisted_choice`):
  only members of one of those groups are offered it (names compare case-insensitively,
  as GitHub's do); no `allowed_groups` means everyone;
- `node_share` on a profile option: choices generated from an instance type's capacity
  (see `node_share_choices`).

Both spawners and the cost service use these functions; nothing here needs a hub or a
cluster. A selection ("user options") is what KubeSpawner receives:
`{"profile": slug, "<option>": choice, "<option>--unlisted-choice": written-in value}`.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from jupyterhub.traitlets import ByteSpecification
from slugify import slugify

from .instances import GiB, MiB, InstanceType

UNLISTED_SUFFIX = "--unlisted-choice"
# the value of a choice select that means "use the write-in field" (KubeSpawner's form)
UNLISTED_SENTINEL = "unlisted-choice"

# node selector keys that name a GPU model, by provider
GPU_TYPE_LABELS = (
    "cloud.google.com/gke-accelerator",
    "k8s.amazonaws.com/accelerator",
    "nvidia.com/gpu.product",
    "accelerator",
)


class ProfileError(Exception):
    """A selection that cannot be started, with a message for the person who made it.

    `status` is the HTTP status it should be answered with: 403 for something that
    exists but is not offered to this person, 400 for something that does not exist or
    is malformed.
    """

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


# --- node-share choices -------------------------------------------------------------


def _memory_label(memory_bytes: float) -> str:
    if memory_bytes < GiB:
        return f"{memory_bytes / MiB:.0f} MiB"
    gib = memory_bytes / GiB
    return f"{gib:.0f} GiB" if gib >= 10 else f"{gib:.1f} GiB".replace(".0 ", " ")


def _cpu_label(cores: float) -> str:
    return f"{cores:.1f}" if cores < 2 else f"{cores:.0f}"


def node_share_choices(
    instance: InstanceType,
    count: int,
    *,
    daemonset_cpu: float = 0.1,
    daemonset_memory_bytes: int = 256 * MiB,
    default: int | None = None,
) -> dict[str, dict]:
    """Choices that share one instance type between people, smallest first.

    The largest choice is the whole node as pods can have it: allocatable capacity less
    the daemonsets' requests, less a safety margin of 2% (at most 2 GiB / 1 CPU) for
    daemonsets added later. Each further choice halves the memory. Memory guarantee
    equals its limit (no memory overcommit); the CPU guarantee is proportional to the
    memory share, and the CPU limit is the whole node, so an idle node is not wasted.
    This is 2i2c's "proportional memory" strategy.

    `default` is the index (0 = smallest) of the choice selected by default.
    """
    if count < 1:
        raise ValueError("node_share needs at least one choice")
    cpu, memory = instance.allocatable()
    cpu -= daemonset_cpu
    memory -= daemonset_memory_bytes
    cpu -= min(cpu * 0.02, 1.0)
    memory -= min(memory * 0.02, 2 * GiB)
    if cpu <= 0 or memory <= 0:
        raise ValueError(f"instance type {instance.name} has no capacity left for user pods")

    choices: list[tuple[str, dict]] = []
    for i in range(count):
        mem_limit = memory / 2**i
        cpu_guarantee = cpu * mem_limit / memory
        label = _memory_label(mem_limit)
        override: dict[str, Any] = {
            "mem_guarantee": int(mem_limit),
            "mem_limit": int(mem_limit),
            "cpu_guarantee": round(cpu_guarantee, 3),
            "cpu_limit": round(cpu, 3),
            "node_selector": {"node.kubernetes.io/instance-type": instance.name},
        }
        if instance.gpu_count:
            override["extra_resource_limits"] = {"nvidia.com/gpu": str(instance.gpu_count)}
        description = (
            f"Up to ~{_cpu_label(cpu)} CPUs when available"
            if i
            else f"~{_cpu_label(cpu)} CPUs always available (a whole {instance.name} node)"
        )
        key = "mem_" + re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
        choices.append((key, {
            "display_name": f"~{label} RAM, ~{_cpu_label(cpu_guarantee)} CPUs",
            "description": description,
            "kubespawner_override": override,
        }))
    choices.reverse()
    result = dict(choices)
    if default is not None:
        if not 0 <= default < len(choices):
            raise ValueError(f"node_share default must be between 0 and {len(choices) - 1}")
        result[choices[default][0]]["default"] = True
    return result


# --- initialising and filtering -----------------------------------------------------


def initialize(profile_list: Iterable[Mapping]) -> list[dict]:
    """A deep copy with KubeSpawner's defaults filled in.

    Every profile gets a `slug` (from its display name, as KubeSpawner makes it), every
    option with choices a default choice (the first, unless one says `default`), and the
    first profile is the default unless one says so.
    """
    profiles = copy.deepcopy(list(profile_list))
    for profile in profiles:
        profile.setdefault("slug", slugify(profile["display_name"]))
        for option in profile.get("profile_options", {}).values():
            choices = option.get("choices") or {}
            if choices and not any(c.get("default") for c in choices.values()):
                next(iter(choices.values()))["default"] = True
            unlisted = option.setdefault("unlisted_choice", {})
            unlisted.setdefault("enabled", False)
            if unlisted["enabled"]:
                unlisted.setdefault("display_name_in_choices", "Other...")
    if profiles and not any(p.get("default") for p in profiles):
        profiles[0]["default"] = True
    return profiles


def _folded(groups: Iterable[str]) -> set[str]:
    return {g.casefold() for g in groups}


def is_allowed(item: Mapping, groups: Iterable[str]) -> bool:
    """True if `item` has no `allowed_groups`, or `groups` meets them (any case)."""
    allowed = item.get("allowed_groups")
    if allowed is None:
        return True
    return bool(_folded(allowed) & _folded(groups))


def available(catalog: Iterable[Mapping], groups: Iterable[str]) -> list[dict]:
    """The profiles, choices and write-ins offered to a member of `groups`.

    A profile with an option left without any choice (all were for other groups and the
    write-in is not theirs either) is dropped: it could not be started. Defaults that
    were filtered out move to the first remaining choice or profile.
    """
    groups = list(groups)
    offered = []
    for profile in initialize(catalog):
        if not is_allowed(profile, groups):
            continue
        startable = True
        for option in profile.get("profile_options", {}).values():
            choices = {
                key: choice
                for key, choice in (option.get("choices") or {}).items()
                if is_allowed(choice, groups)
            }
            if choices and not any(c.get("default") for c in choices.values()):
                next(iter(choices.values()))["default"] = True
            option["choices"] = choices
            unlisted = option["unlisted_choice"]
            if unlisted["enabled"] and not is_allowed(unlisted, groups):
                unlisted["enabled"] = False
            if not choices and not unlisted["enabled"]:
                startable = False
        if startable:
            offered.append(profile)
    if offered and not any(p.get("default") for p in offered):
        offered[0]["default"] = True
    return offered


# --- resolving a selection ----------------------------------------------------------


@dataclass
class ResolvedServer:
    """What a selection starts: the profile, the choices and the resources they give."""

    profile_slug: str | None
    profile_display_name: str | None
    # option key -> {"choice": key or None, "write_in": value or None, "display_name": str}
    choices: dict[str, dict] = field(default_factory=dict)
    # the merged kubespawner_override of the profile and the selected choices
    override: dict[str, Any] = field(default_factory=dict)

    @property
    def image(self) -> str | None:
        return self.override.get("image")

    @property
    def cpu_guarantee(self) -> float | None:
        return _float_or_none(self.override.get("cpu_guarantee"))

    @property
    def cpu_limit(self) -> float | None:
        return _float_or_none(self.override.get("cpu_limit"))

    @property
    def mem_guarantee(self) -> int | None:
        return parse_bytes(self.override.get("mem_guarantee"))

    @property
    def mem_limit(self) -> int | None:
        return parse_bytes(self.override.get("mem_limit"))

    @property
    def node_selector(self) -> dict[str, str]:
        return dict(self.override.get("node_selector") or {})

    @property
    def environment(self) -> dict[str, str]:
        return dict(self.override.get("environment") or {})

    @property
    def gpu_count(self) -> int:
        return gpu_count(self.override)

    @property
    def gpu_type(self) -> str | None:
        selector = self.node_selector
        return next((selector[k] for k in GPU_TYPE_LABELS if k in selector), None)

    def summary(self) -> dict[str, Any]:
        """JSON-able description, for pod annotations and the accounting service."""
        return {
            "profile": self.profile_slug,
            "choices": {k: v["write_in"] or v["choice"] for k, v in self.choices.items()},
            "image": self.image,
            "cpu_guarantee": self.cpu_guarantee,
            "cpu_limit": self.cpu_limit,
            "mem_guarantee": self.mem_guarantee,
            "mem_limit": self.mem_limit,
            "gpu_count": self.gpu_count,
            "gpu_type": self.gpu_type,
        }


def _float_or_none(value) -> float | None:
    return None if value is None else float(value)


_byte_spec = ByteSpecification()


def parse_bytes(value) -> int | None:
    """'4G', '512M', 1024 -> bytes, as KubeSpawner's ByteSpecification reads them."""
    if value is None:
        return None
    return int(_byte_spec.validate(None, value))


def gpu_count(override: Mapping) -> int:
    """GPUs an override asks for: extended resources named `<vendor>/gpu`."""
    limits = override.get("extra_resource_limits") or {}
    return sum(int(float(v)) for k, v in limits.items() if k.endswith("/gpu") and v is not None)


def merge_override(target: dict, new: Mapping) -> None:
    """Apply an override the way KubeSpawner does: dicts merge, None removes a key."""
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            merge_override(target[key], value)
        elif value is None:
            target.pop(key, None)
        else:
            target[key] = copy.deepcopy(value)


def _format_write_in(value: Any, written: str) -> Any:
    """Put the written-in value where `{value}` stands (KubeSpawner's recursive_format)."""
    if isinstance(value, str):
        return value.replace("{value}", written)
    if isinstance(value, list):
        return [_format_write_in(v, written) for v in value]
    if isinstance(value, dict):
        return {k: _format_write_in(v, written) for k, v in value.items()}
    return value


def _names(items: Iterable[str]) -> str:
    items = sorted(items)
    return ", ".join(items) if items else "(none)"


def _find_profile(catalog: list[dict], slug: str | None) -> dict:
    if not slug:
        return next(p for p in catalog if p.get("default"))
    for profile in catalog:
        if profile["slug"] == slug:
            return profile
    raise ProfileError(
        f"There is no server profile '{slug}'. Profiles on this hub: "
        f"{_names(p['slug'] for p in catalog)}."
    )


def resolve(catalog: Iterable[Mapping], groups: Iterable[str], selection: Mapping | None) -> ResolvedServer:
    """The server that `selection` starts for a member of `groups`, or a ProfileError.

    The same checks apply whether the selection came from the spawn form or the REST API:
    the profile must exist and be offered to this person, each chosen choice likewise, and
    a written-in value must be enabled for them and match the option's regex.
    """
    groups = list(groups)
    selection = dict(selection or {})
    full = initialize(catalog)
    if not full:
        return ResolvedServer(profile_slug=None, profile_display_name=None)

    for key, value in selection.items():
        if key == "profile" or key.endswith(UNLISTED_SUFFIX) or key in _option_keys(full):
            if value is not None and not isinstance(value, str):
                raise ProfileError(f"The selection '{key}' must be a string, not {type(value).__name__}.")

    offered = available(full, groups)
    slug = selection.get("profile") or None
    if slug:
        profile = _find_profile(full, slug)  # an unknown profile: 400
        if not is_allowed(profile, groups):
            raise ProfileError(
                f"The server profile '{profile['display_name']}' is only for members of "
                f"{_names(profile['allowed_groups'])}. Your groups: {_names(groups)}.",
                status=403,
            )
    if not offered:
        raise ProfileError(
            f"No server profile on this hub is available to you. Your groups: {_names(groups)}.",
            status=403,
        )
    profile = next((p for p in offered if p["slug"] == slug), None) if slug else _find_profile(offered, None)
    if profile is None:
        raise ProfileError(
            f"The server profile '{slug}' has no choice you may start. Your groups: {_names(groups)}.",
            status=403,
        )
    full_profile = next(p for p in full if p["slug"] == profile["slug"])

    resolved = ResolvedServer(profile_slug=profile["slug"], profile_display_name=profile["display_name"])
    merge_override(resolved.override, profile.get("kubespawner_override") or {})
    for option_key, option in profile.get("profile_options", {}).items():
        full_option = full_profile["profile_options"][option_key]
        option_name = option.get("display_name", option_key)
        write_in = selection.get(option_key + UNLISTED_SUFFIX)
        choice_key = selection.get(option_key) or None
        if choice_key == UNLISTED_SENTINEL:
            choice_key = None
            if write_in is None:
                raise ProfileError(f"Write in a value for '{option_name}', or pick one of its choices.")
        if write_in is not None:
            write_in = write_in.strip()
        if write_in:
            unlisted = option["unlisted_choice"]
            if not full_option["unlisted_choice"]["enabled"]:
                raise ProfileError(f"'{option_name}' does not take a written-in value; pick one of its choices.")
            if not unlisted["enabled"]:
                raise ProfileError(
                    f"Writing in a value for '{option_name}' is only for members of "
                    f"{_names(unlisted.get('allowed_groups') or [])}. Your groups: {_names(groups)}.",
                    status=403,
                )
            regex = unlisted.get("validation_regex")
            if regex and not re.fullmatch(regex, write_in):
                message = unlisted.get("validation_message") or f"It must match the pattern {regex}."
                raise ProfileError(f"'{write_in}' is not a valid value for '{option_name}': {message}")
            override = _format_write_in(unlisted.get("kubespawner_override") or {}, write_in)
            resolved.choices[option_key] = {
                "choice": None, "write_in": write_in,
                "display_name": write_in,
            }
        else:
            if choice_key is None:
                choice_key = next((k for k, c in option["choices"].items() if c.get("default")), None)
                if choice_key is None:
                    raise ProfileError(f"Write in a value for '{option_name}'; it has no choices to pick from.")
            elif choice_key not in full_option.get("choices", {}):
                raise ProfileError(
                    f"'{choice_key}' is not a choice of '{option_name}'. Choices: "
                    f"{_names(option['choices'])}."
                )
            elif choice_key not in option["choices"]:
                choice = full_option["choices"][choice_key]
                raise ProfileError(
                    f"The choice '{choice.get('display_name', choice_key)}' of '{option_name}' is only "
                    f"for members of {_names(choice.get('allowed_groups') or [])}. "
                    f"Your groups: {_names(groups)}.",
                    status=403,
                )
            choice = option["choices"][choice_key]
            override = choice.get("kubespawner_override") or {}
            resolved.choices[option_key] = {
                "choice": choice_key, "write_in": None,
                "display_name": choice.get("display_name", choice_key),
            }
        merge_override(resolved.override, override)
    return resolved


def _option_keys(catalog: list[dict]) -> set[str]:
    return {key for p in catalog for key in p.get("profile_options", {})}


def selection_from_form(formdata: Mapping[str, list[str]]) -> dict[str, str]:
    """The selection a spawn form posted, in the user-options shape KubeSpawner reads.

    Fields are KubeSpawner's: `profile`, `profile-option-<slug>--<option>` and
    `profile-option-<slug>--<option>--unlisted-choice`. Fields of profiles that were not
    selected, and anything else (the XSRF token), are dropped.
    """
    values = {k: v[0] if isinstance(v, (list, tuple)) else v for k, v in formdata.items() if v}
    slug = values.get("profile")
    if not slug:
        return {}
    selection = {"profile": slug}
    prefix = f"profile-option-{slug}--"
    for key, value in values.items():
        if key.startswith(prefix):
            selection[key[len(prefix):]] = value
    # a write-in field is only meant when its select says so (or has no select: no JS)
    for key in [k for k in selection if k.endswith(UNLISTED_SUFFIX)]:
        option_key = key[: -len(UNLISTED_SUFFIX)]
        if selection.get(option_key, UNLISTED_SENTINEL) != UNLISTED_SENTINEL or not selection[key].strip():
            del selection[key]
        else:
            selection.pop(option_key, None)
    return selection
