"""What a profile or choice gives, in plain words and figures: never an instance type's
name, which means nothing to the person choosing ("4 GiB memory, 0.5 CPUs guaranteed, up
to 4"), from the same resolved figures that are charged and enforced."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .instances import GiB
from .pricing import ServerResources
from .selection import ResolvedServer, merge_override

T = TypeVar("T")

# the override keys that change what a server gets (and so what it costs)
RESOURCE_KEYS = {"cpu_guarantee", "cpu_limit", "mem_guarantee", "mem_limit", "extra_resource_limits", "node_selector"}


def _number(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0") if value < 10 else f"{value:.0f}"


def _range(guarantee: float | None, limit: float | None, unit: str, plural: str) -> str | None:
    def named(value: float) -> str:
        return f"{_number(value)} {unit if value == 1 else plural}"

    if guarantee and limit and limit > guarantee:
        return f"{named(guarantee)} guaranteed, up to {_number(limit)}"
    if guarantee or limit:
        return named(guarantee or limit)
    return None


def in_plain_words(resources: ServerResources) -> str | None:
    """'4 GiB memory, 0.5 CPUs guaranteed, up to 4, 1 GPU' (None: nothing is set)."""
    parts = [
        _range(
            resources.mem_guarantee / GiB if resources.mem_guarantee else None,
            resources.mem_limit / GiB if resources.mem_limit else None,
            "GiB memory",
            "GiB memory",
        ),
        _range(resources.cpu_guarantee, resources.cpu_limit, "CPU", "CPUs"),
        f"{resources.gpu_count} {'GPU' if resources.gpu_count == 1 else 'GPUs'}" if resources.gpu_count else None,
    ]
    words = [p for p in parts if p]
    return ", ".join(words) if words else None


def by_choice(profiles: list[Mapping[str, Any]], figure: Callable[[ServerResources], T]) -> dict[str, dict[str, T]]:
    """profile slug -> {"": the profile alone, "option/choice": with that choice} ->
    `figure` of the server it starts, for the profile and each choice that changes what a
    server gets (an image or environment choice has the other choices' figures)."""
    result: dict[str, dict[str, T]] = {}
    for profile in profiles:
        base = profile.get("kubespawner_override") or {}
        found = result[profile["slug"]] = {"": figure(ResolvedServer(None, None, {}, dict(base)).resources())}
        for key, option in (profile.get("profile_options") or {}).items():
            for choice_key, choice in (option.get("choices") or {}).items():
                override = choice.get("kubespawner_override") or {}
                if not RESOURCE_KEYS & set(override):
                    continue
                merged: dict[str, Any] = json.loads(json.dumps(base))
                merge_override(merged, override)
                found[f"{key}/{choice_key}"] = figure(ResolvedServer(None, None, {}, merged).resources())
    return result


def plain_resources(profiles: list[Mapping[str, Any]]) -> dict[str, dict[str, str | None]]:
    """What the profile and each choice gives, in plain words (`by_choice`)."""
    return by_choice(profiles, in_plain_words)
