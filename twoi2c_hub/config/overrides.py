"""The raw `profiles:` section as KubeSpawner 7.1 would use it: what stops a start, and what
works but may not be what was meant, each with its path.

These checks read the raw data (before the models), so every bad key of every override
is reported with its own path, not only the first one pydantic meets. They follow what
KubeSpawner's `_apply_overrides` does with an override at start: a mapping is merged
into the setting's current value, anything else is `setattr` on the spawner -- so a
value the setting refuses, or a mapping for a setting KubeSpawner does not have, stops
the start (an error), while a key that is no setting is set on the spawner where
nothing reads it (a warning).
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable, Iterator
from typing import Any

from traitlets import Dict, TraitError

from .. import catalog
from .profiles import Choice, Profile, ProfileOption, UnlistedChoice
from .yamlfile import shown

# checked below with messages of their own
_RESOURCE_KEYS = ("cpu_guarantee", "cpu_limit", "mem_guarantee", "mem_limit")
_MAPPING_KEYS = ("node_selector", "environment", "extra_resource_limits", "extra_resource_guarantees")
# our own keys of a profile, a choice or a write-in: a near miss is refused, since it
# would offer to everyone what was meant for some groups
_GUARDING_KEYS = ("allowed_groups",)


@functools.cache
def kubespawner_traits() -> dict[str, Any]:
    """KubeSpawner's configurable traits by name (what a kubespawner_override may set)."""
    from kubespawner import KubeSpawner

    return KubeSpawner.class_traits(config=True)


def _spawner():
    # a spawner to set values on, as KubeSpawner's setattr at start would: its traits set
    # up, its __init__ not run (that would look for a cluster)
    from kubespawner import KubeSpawner

    return KubeSpawner.__new__(KubeSpawner)


def _number_problem(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "must be a number of CPU cores, like 0.5 or 2"
    if value <= 0:
        return "must be > 0"
    return None


def suggestion(key: Any, known) -> str:
    """' (did you mean 'x'?)' for the closest of `known`, never `key` itself."""
    close = difflib.get_close_matches(str(key), [k for k in known if k != key], n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _trait_problem(key: str, value: Any) -> str | None:
    """What KubeSpawner would say setting `key` to `value` (a mapping is merged instead)."""
    trait = kubespawner_traits()[key]
    if isinstance(value, dict) and (isinstance(trait, Dict) or isinstance(trait.default_value, dict)):
        return None
    try:
        setattr(_spawner(), key, value)
    except TraitError:
        return f"must be {trait.info()}, not {shown(value)} (KubeSpawner would refuse it at start)"
    except Exception:  # noqa: BLE001 - anything else is KubeSpawner's own business at start
        return None
    return None


def override_problems(override: Any, *, write_in: bool = False) -> list[tuple[tuple, str]]:
    """Every problem in one kubespawner_override that would stop a start, as (path
    inside it, message).

    Values must be what the KubeSpawner setting takes; resource figures must be positive;
    a guarantee must not exceed its limit. A write-in's override is only checked for
    mappings of unknown keys: its `{value}` placeholders are filled in at spawn time.
    """
    if not isinstance(override, dict):
        return [((), "must be a mapping of KubeSpawner settings to values")]
    traits = kubespawner_traits()
    problems: list[tuple[tuple, str]] = []
    sizes: dict[str, int] = {}
    for key, value in override.items():
        if key not in traits:
            if isinstance(value, dict) and not _spawner_has(key):
                problems.append(
                    (
                        (key,),
                        "is not a KubeSpawner setting, and KubeSpawner cannot merge a mapping into "
                        f"a setting it does not have: the start would fail{suggestion(key, traits)}",
                    )
                )
            continue
        if write_in:
            continue
        problem = None
        if key in ("cpu_guarantee", "cpu_limit") and value is not None:
            problem = _number_problem(value)
        elif key in ("mem_guarantee", "mem_limit") and value is not None:
            try:
                sizes[key] = catalog.parse_bytes(value)
            except Exception:
                problem = f"must be a size like 512M, 4G or a number of bytes, not {shown(value)}"
            else:
                if sizes[key] <= 0:
                    problem = "must be > 0"
        elif key == "image" and (not isinstance(value, str) or not value.strip()):
            problem = "must be an image name such as quay.io/jupyter/scipy-notebook:2025-01-06"
        elif key in _MAPPING_KEYS and isinstance(value, dict):
            if key in ("node_selector", "environment") and not all(
                isinstance(v, str) or v is None for v in value.values()
            ):
                problem = "values must be strings (quote numbers, booleans and lists)"
            elif key.startswith("extra_resource"):
                for name, amount in value.items():
                    if str(name).endswith("/gpu") and amount is not None and not _whole_number(amount):
                        problems.append(((key, name), 'must be a whole number of GPUs, like "1"'))
        elif key in _MAPPING_KEYS:
            problem = "must be a mapping of names to values"
        else:
            problem = _trait_problem(key, value)
        if problem:
            problems.append(((key,), problem))
    cpu_g, cpu_l = override.get("cpu_guarantee"), override.get("cpu_limit")
    if not write_in and not _number_problem(cpu_g) and not _number_problem(cpu_l) and cpu_g > cpu_l:
        problems.append((("cpu_guarantee",), f"{cpu_g} must not exceed cpu_limit ({cpu_l})"))
    if "mem_guarantee" in sizes and "mem_limit" in sizes and sizes["mem_guarantee"] > sizes["mem_limit"]:
        problems.append(
            (("mem_guarantee",), f"{override['mem_guarantee']} must not exceed mem_limit ({override['mem_limit']})")
        )
    return problems


def _spawner_has(key: Any) -> bool:
    from kubespawner import KubeSpawner

    return isinstance(key, str) and hasattr(KubeSpawner, key)


def override_warnings(override: Any, beside: Iterable[str] = ()) -> list[tuple[tuple, str]]:
    """Keys of one kubespawner_override that are no KubeSpawner setting: KubeSpawner sets
    them on the spawner as they are, where nothing reads them. `beside`: the keys of the
    profile or choice the override is in (a `default: true` meant there, not in it)."""
    if not isinstance(override, dict):
        return []
    traits = kubespawner_traits()
    warnings = []
    for key, value in override.items():
        # a mapping for a setting KubeSpawner lacks is an error (override_problems)
        if key in traits or (isinstance(value, dict) and not _spawner_has(key)):
            continue
        if key in beside:
            hint = f" (as a key beside kubespawner_override, {key} would be read)"
        else:
            hint = suggestion(key, traits)
        message = f"is not a KubeSpawner setting: KubeSpawner sets it on the spawner, where nothing reads it{hint}"
        warnings.append(((key,), message))
    return warnings


def _whole_number(amount: Any) -> bool:
    try:
        count = float(amount)
    except (TypeError, ValueError):
        return False
    return count >= 0 and count == int(count)


# --- walking the raw section -----------------------------------------------------------


def _items(data: Any) -> Iterator[tuple[tuple, type, dict]]:
    """(path, model, raw mapping) of every profile, option, choice and write-in."""
    profiles = data.get("profiles") if isinstance(data, dict) else None
    if not isinstance(profiles, list):
        return
    for i, profile in enumerate(profiles):
        if not isinstance(profile, dict):
            continue
        yield ("profiles", i), Profile, profile
        options = profile.get("profile_options")
        for key, option in options.items() if isinstance(options, dict) else []:
            if not isinstance(option, dict):
                continue
            where = ("profiles", i, "profile_options", key)
            yield where, ProfileOption, option
            choices = option.get("choices")
            for choice_key, choice in choices.items() if isinstance(choices, dict) else []:
                if isinstance(choice, dict):
                    yield where + ("choices", choice_key), Choice, choice
            if isinstance(option.get("unlisted_choice"), dict):
                yield where + ("unlisted_choice",), UnlistedChoice, option["unlisted_choice"]


def catalog_problems(data: Any, *, overrides: bool = True) -> list[tuple[tuple, str]]:
    """What in the raw `profiles:` section would stop a start, with paths: bad values in
    every kubespawner_override (unless `overrides` is False), and a near miss of
    `allowed_groups`."""
    problems: list[tuple[tuple, str]] = []
    for where, model, item in _items(data):
        for key in item:
            if key not in model.model_fields and difflib.get_close_matches(str(key), _GUARDING_KEYS, n=1):
                problems.append(
                    (
                        where + (key,),
                        f"is not a known setting{suggestion(key, model.model_fields)}: "
                        "as written, this is offered to everyone",
                    )
                )
        if overrides and "kubespawner_override" in item:
            base = where + ("kubespawner_override",)
            found = override_problems(item["kubespawner_override"], write_in=model is UnlistedChoice)
            problems.extend((base + loc, msg) for loc, msg in found)
    return problems


def _several_defaults(where: tuple, items: Any, what: str) -> list[tuple[tuple, str]]:
    pairs = items.items() if isinstance(items, dict) else enumerate(items)
    defaults = [key for key, item in pairs if isinstance(item, dict) and item.get("default")]
    if len(defaults) < 2:
        return []
    first = defaults[0] if isinstance(defaults[0], str) else f"{where[-1]}[{defaults[0]}]"
    return [(where, f"{len(defaults)} {what}s say default: KubeSpawner (and this hub) selects the first, {first}")]


def profile_warnings(data: Any, *, overrides: bool = True) -> list[tuple[tuple, str]]:
    """What in the raw `profiles:` section works but may not be what was meant, with
    paths: keys neither KubeSpawner, jupyterhub-fancy-profiles nor twoi2c-hub reads
    (kept and handed to KubeSpawner, as zero-to-jupyterhub does), and override keys that
    are no KubeSpawner setting (unless `overrides` is False)."""
    warnings: list[tuple[tuple, str]] = []
    profiles = data.get("profiles") if isinstance(data, dict) else None
    if isinstance(profiles, list):
        warnings.extend(_several_defaults(("profiles",), profiles, "profile"))
    for where, model, item in _items(data):
        for key in item:
            if key in model.model_fields or difflib.get_close_matches(str(key), _GUARDING_KEYS, n=1):
                continue
            warnings.append(
                (
                    where + (key,),
                    "is read by neither KubeSpawner, jupyterhub-fancy-profiles nor twoi2c-hub: "
                    f"kept and passed on unchanged{suggestion(key, model.model_fields)}",
                )
            )
        choices = item.get("choices") if model is ProfileOption else None
        if isinstance(choices, dict):
            warnings.extend(_several_defaults(where + ("choices",), choices, "choice"))
        if overrides and "kubespawner_override" in item:
            base = where + ("kubespawner_override",)
            found = override_warnings(item["kubespawner_override"], beside=model.model_fields)
            warnings.extend((base + loc, msg) for loc, msg in found)
    return warnings
