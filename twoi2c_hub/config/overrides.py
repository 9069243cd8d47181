"""KubeSpawner overrides in the raw `profiles:` section, checked key by key with paths.

These checks read the raw data (before the models), so every bad key of every override
is reported with its own path, not only the first one pydantic meets.
"""

from __future__ import annotations

import difflib
import functools
from typing import Any

from .. import catalog


@functools.cache
def kubespawner_traits() -> dict[str, Any]:
    """KubeSpawner's configurable traits by name (what a kubespawner_override may set)."""
    from kubespawner import KubeSpawner

    return KubeSpawner.class_traits(config=True)


def _number_problem(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "must be a number of CPU cores, like 0.5 or 2"
    if value <= 0:
        return "must be > 0"
    return None


def override_problems(override: Any, *, write_in: bool = False) -> list[tuple[tuple, str]]:
    """Every problem in one kubespawner_override, as (path inside it, message).

    Keys must be KubeSpawner settings; resource figures must be what KubeSpawner accepts
    and be positive; a guarantee must not exceed its limit. A write-in's override is
    only checked for its keys: its `{value}` placeholders are filled in at spawn time.
    """
    if not isinstance(override, dict):
        return [((), "must be a mapping of KubeSpawner settings to values")]
    traits = kubespawner_traits()
    problems: list[tuple[tuple, str]] = []
    sizes: dict[str, int] = {}
    for key, value in override.items():
        if key not in traits:
            close = difflib.get_close_matches(str(key), traits, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(((key,), f"is not a KubeSpawner setting{hint}"))
            continue
        if write_in or value is None:
            continue
        problem = None
        if key in ("cpu_guarantee", "cpu_limit"):
            problem = _number_problem(value)
        elif key in ("mem_guarantee", "mem_limit"):
            try:
                sizes[key] = catalog.parse_bytes(value)
            except Exception:
                problem = f"must be a size like 512M, 4G or a number of bytes, not {value!r}"
            else:
                if sizes[key] <= 0:
                    problem = "must be > 0"
        elif key == "image" and (not isinstance(value, str) or not value.strip()):
            problem = "must be an image name such as quay.io/jupyter/scipy-notebook:2025-01-06"
        elif key in ("node_selector", "environment", "extra_resource_limits", "extra_resource_guarantees"):
            if not isinstance(value, dict):
                problem = "must be a mapping of names to values"
            elif key in ("node_selector", "environment") and not all(
                isinstance(v, str) or v is None for v in value.values()
            ):
                problem = "values must be strings (quote numbers, booleans and lists)"
            elif key.startswith("extra_resource"):
                for name, amount in value.items():
                    if str(name).endswith("/gpu") and not _whole_number(amount):
                        problems.append(((key, name), 'must be a whole number of GPUs, like "1"'))
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


def _whole_number(amount: Any) -> bool:
    try:
        count = float(amount)
    except (TypeError, ValueError):
        return False
    return count >= 0 and count == int(count)


def catalog_problems(data: Any) -> list[tuple[tuple, str]]:
    """Problems in every kubespawner_override of the raw `profiles:` section, with paths."""
    problems: list[tuple[tuple, str]] = []
    profiles = data.get("profiles") if isinstance(data, dict) else None
    if not isinstance(profiles, list):
        return problems

    def check(where: tuple, item: Any, write_in: bool = False):
        if isinstance(item, dict) and "kubespawner_override" in item:
            base = where + ("kubespawner_override",)
            problems.extend(
                (base + loc, msg) for loc, msg in override_problems(item["kubespawner_override"], write_in=write_in)
            )

    for i, profile in enumerate(profiles):
        check(("profiles", i), profile)
        options = profile.get("profile_options") if isinstance(profile, dict) else None
        for key, option in (options or {}).items() if isinstance(options, dict) else []:
            if not isinstance(option, dict):
                continue
            where = ("profiles", i, "profile_options", key)
            choices = option.get("choices")
            for choice_key, choice in (choices or {}).items() if isinstance(choices, dict) else []:
                check(where + ("choices", choice_key), choice)
            check(where + ("unlisted_choice",), option.get("unlisted_choice"), write_in=True)
    return problems
