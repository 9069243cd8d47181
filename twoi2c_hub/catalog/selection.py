"""Resolving a selection: what a person's choice of profile, choices and write-ins starts.

The same checks apply whether the selection came from the spawn form or the REST API:
the profile must exist and be offered to this person, each chosen choice likewise, and a
written-in value must be enabled for them and match the option's regex.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jupyterhub.traitlets import ByteSpecification

from .pricing import ServerResources
from .profiles import (
    GPU_TYPE_LABELS,
    INSTANCE_TYPE_LABELS,
    UNLISTED_SENTINEL,
    UNLISTED_SUFFIX,
    ProfileError,
    available,
    initialize,
    is_allowed,
)
from .summary import ServerSummary

# the longest written-in value (an image name is at most a few hundred characters)
MAX_WRITE_IN_LENGTH = 500

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

    @property
    def instance_type(self) -> str | None:
        selector = self.node_selector
        return next((selector[k] for k in INSTANCE_TYPE_LABELS if k in selector), None)

    def resources(self) -> ServerResources:
        """What the server asks for, as pricing and the accounting see it."""
        return ServerResources(
            self.cpu_guarantee,
            self.cpu_limit,
            self.mem_guarantee,
            self.mem_limit,
            self.gpu_count,
            self.gpu_type,
            self.instance_type,
        )

    def summary(self) -> ServerSummary:
        """What the server is, for pod annotations, the usage service and the budget check."""
        return ServerSummary(
            profile=self.profile_slug,
            choices={k: v["write_in"] or v["choice"] for k, v in self.choices.items()},
            image=self.image,
            cpu_guarantee_cores=self.cpu_guarantee,
            cpu_limit_cores=self.cpu_limit,
            mem_guarantee_bytes=self.mem_guarantee,
            mem_limit_bytes=self.mem_limit,
            gpu_count=self.gpu_count,
            gpu_type=self.gpu_type,
            instance_type=self.instance_type,
        )


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


_byte_spec = ByteSpecification()


def parse_bytes(value: str | int | float | None) -> int | None:
    """'4G', '512M', 1024 -> bytes, as KubeSpawner's ByteSpecification reads them."""
    if value is None:
        return None
    return int(_byte_spec.validate(None, value))


def gpu_count(override: Mapping) -> int:
    """GPUs an override asks for: extended resources named `<vendor>/gpu`."""
    limits = override.get("extra_resource_limits") or {}
    return sum(int(float(v)) for k, v in limits.items() if k.endswith("/gpu") and v is not None)


def merge_override(target: dict, new: Mapping) -> None:
    """Apply an override the way KubeSpawner 7.1's `_apply_overrides` does: a mapping is
    merged into the setting's mapping (its `recursive_update`: key by key at any depth,
    None removing a key, also inside a mapping made anew), so a choice's `node_selector`
    keeps the profile's other labels; any other value replaces the setting, and None
    leaves it unset."""
    for key, value in new.items():
        if isinstance(value, Mapping):
            if not isinstance(target.get(key), dict):
                target[key] = {}
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
        f"There is no server profile '{slug}'. Profiles on this hub: {_names(p['slug'] for p in catalog)}."
    )


def resolve(catalog: Iterable[Mapping], groups: Iterable[str], selection: Mapping | None) -> ResolvedServer:
    """The server that `selection` starts for a member of `groups`, or a ProfileError."""
    groups = list(groups)
    selection = dict(selection or {})
    full = initialize(catalog)
    if not full:
        return ResolvedServer(profile_slug=None, profile_display_name=None)
    _check_value_types(full, selection)
    profile, full_profile = _pick_profile(full, groups, selection.get("profile") or None)

    resolved = ResolvedServer(profile_slug=profile["slug"], profile_display_name=profile["display_name"])
    merge_override(resolved.override, profile.get("kubespawner_override") or {})
    for option_key, option in profile.get("profile_options", {}).items():
        choice, override = _resolve_option(
            option_key, option, full_profile["profile_options"][option_key], groups, selection
        )
        resolved.choices[option_key] = choice
        merge_override(resolved.override, override)
    return resolved


def _check_value_types(catalog: list[dict], selection: Mapping) -> None:
    option_keys = {key for p in catalog for key in p.get("profile_options", {})}
    for key, value in selection.items():
        if key == "profile" or key.endswith(UNLISTED_SUFFIX) or key in option_keys:
            if value is not None and not isinstance(value, str):
                raise ProfileError(f"The selection '{key}' must be a string, not {type(value).__name__}.")


def _pick_profile(full: list[dict], groups: list[str], slug: str | None) -> tuple[dict, dict]:
    """(the profile as offered to this person, the same profile unfiltered)."""
    offered = available(full, groups)
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
    return profile, next(p for p in full if p["slug"] == profile["slug"])


def _resolve_option(
    option_key: str, option: dict, full_option: dict, groups: list[str], selection: Mapping
) -> tuple[dict, Mapping]:
    """(the choice made for one option, the override it applies)."""
    option_name = option.get("display_name", option_key)
    write_in = selection.get(option_key + UNLISTED_SUFFIX)
    choice_key = selection.get(option_key) or None
    if choice_key == UNLISTED_SENTINEL:
        choice_key = None
        if write_in is None:
            raise ProfileError(f"Write in a value for '{option_name}', or pick one of its choices.")
    if write_in is not None:
        write_in = write_in.strip()
    if write_in and len(write_in) > MAX_WRITE_IN_LENGTH:
        raise ProfileError(f"A written-in value for '{option_name}' must be at most {MAX_WRITE_IN_LENGTH} characters.")
    if write_in:
        return _resolve_write_in(option_name, option, full_option, groups, write_in)

    if choice_key is None:
        choice_key = next((k for k, c in option["choices"].items() if c.get("default")), None)
        if choice_key is None:
            raise ProfileError(f"Write in a value for '{option_name}'; it has no choices to pick from.")
    elif choice_key not in full_option.get("choices", {}):
        raise ProfileError(f"'{choice_key}' is not a choice of '{option_name}'. Choices: {_names(option['choices'])}.")
    elif choice_key not in option["choices"]:
        choice = full_option["choices"][choice_key]
        raise ProfileError(
            f"The choice '{choice.get('display_name', choice_key)}' of '{option_name}' is only "
            f"for members of {_names(choice.get('allowed_groups') or [])}. "
            f"Your groups: {_names(groups)}.",
            status=403,
        )
    choice = option["choices"][choice_key]
    made = {"choice": choice_key, "write_in": None, "display_name": choice.get("display_name", choice_key)}
    return made, choice.get("kubespawner_override") or {}


def _resolve_write_in(
    option_name: str, option: dict, full_option: dict, groups: list[str], write_in: str
) -> tuple[dict, Mapping]:
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
    return {"choice": None, "write_in": write_in, "display_name": write_in}, override
