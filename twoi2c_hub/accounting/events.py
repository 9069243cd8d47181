"""What happens to servers and groups, as typed events, parsed once where they come in.

The spawners post JSON events (`{"type": "start" | "stop" | "groups", ...}`) to the
usage service; `parse_event` turns one into a `ServerStarted`, `ServerStopped` or
`GroupsChanged`, or raises `EventError` naming the field that is wrong. Recording them
(`recording.record`) never sees an unchecked value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Union

from .models import STOP_REASONS, to_ms

# the earliest and latest start or stop times an event may carry
_EARLIEST_MS = to_ms(datetime(2000, 1, 1, tzinfo=UTC))
_LATEST_MS = to_ms(datetime(2200, 1, 1, tzinfo=UTC))
MAX_NAME_LENGTH = 255
MAX_GROUPS = 1000
MAX_IMAGE_LENGTH = 2000


class EventError(ValueError):
    """An event that cannot be recorded: `field` is its path (`events[0].server.cpu_limit`)."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass
class ServerStart:
    """A server that started: who, when (the hub's start time), with what."""

    username: str
    server_name: str
    started_ms: int
    profile: str | None = None
    choices: dict = field(default_factory=dict)
    image: str | None = None
    cpu_guarantee: float | None = None
    cpu_limit: float | None = None
    mem_guarantee_bytes: int | None = None
    mem_limit_bytes: int | None = None
    gpu_count: int = 0
    gpu_type: str | None = None
    instance_type: str | None = None
    groups: list[str] = field(default_factory=list)

    RESOURCE_FIELDS = (
        "profile",
        "image",
        "cpu_guarantee",
        "cpu_limit",
        "mem_guarantee_bytes",
        "mem_limit_bytes",
        "gpu_count",
        "gpu_type",
        "instance_type",
    )

    @classmethod
    def from_summary(
        cls, username: str, server_name: str, started_ms: int, summary: Mapping, groups: Iterable[str]
    ) -> ServerStart:
        """From `ResolvedServer.summary()` (what the spawners annotate their servers with)."""
        return cls(
            username=username,
            server_name=server_name,
            started_ms=started_ms,
            profile=summary.get("profile"),
            choices=summary.get("choices") or {},
            image=summary.get("image"),
            cpu_guarantee=summary.get("cpu_guarantee"),
            cpu_limit=summary.get("cpu_limit"),
            mem_guarantee_bytes=summary.get("mem_guarantee"),
            mem_limit_bytes=summary.get("mem_limit"),
            gpu_count=summary.get("gpu_count") or 0,
            gpu_type=summary.get("gpu_type"),
            instance_type=summary.get("instance_type"),
            groups=sorted(set(groups)),
        )


@dataclass
class ServerStarted:
    start: ServerStart


@dataclass
class ServerStopped:
    """A server that stopped; `started_ms` names its session (None: the open one)."""

    username: str
    server_name: str
    stopped_ms: int
    reason: str
    started_ms: int | None = None


@dataclass
class GroupsChanged:
    """A person's groups from `at_ms`: all of them (`groups`), or what changed."""

    username: str
    at_ms: int
    groups: frozenset[str] | None = None
    added: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()


Event = Union[ServerStarted, ServerStopped, GroupsChanged]


# --- parsing ------------------------------------------------------------------------------


def parse_time(value: Any, where: str) -> int:
    """Epoch ms from the hub's ISO 8601 times ('2026-11-26T07:00:00.123456Z') or epoch ms."""
    if isinstance(value, bool):
        raise EventError(where, "must be a time, not true or false")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise EventError(where, "must be a finite number of milliseconds")
        ms = int(value)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise EventError(where, f"'{value[:40]}' is not an ISO 8601 time") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        ms = to_ms(moment)
    else:
        raise EventError(where, "must be an ISO 8601 time or epoch milliseconds")
    if not _EARLIEST_MS <= ms < _LATEST_MS:
        raise EventError(where, "must be between the years 2000 and 2200")
    return ms


def _name(value: Any, where: str, *, empty: bool = False) -> str:
    if value is None and empty:
        return ""
    if not isinstance(value, str) or (not value and not empty):
        raise EventError(where, "must be a non-empty string" if not empty else "must be a string")
    if len(value) > MAX_NAME_LENGTH:
        raise EventError(where, f"must be at most {MAX_NAME_LENGTH} characters")
    return value


def _names(value: Any, where: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list):
        raise EventError(where, "must be a list of names")
    if len(value) > MAX_GROUPS:
        raise EventError(where, f"must have at most {MAX_GROUPS} names")
    return frozenset(_name(v, f"{where}[{i}]") for i, v in enumerate(value))


def _number(value: Any, where: str, *, whole: bool = False) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EventError(where, "must be a number")
    if not math.isfinite(value) or value < 0 or value > 1e15:
        raise EventError(where, "must be a finite number between 0 and 10^15")
    if whole:
        if value != int(value):
            raise EventError(where, "must be a whole number")
        return int(value)
    return float(value)


def _text(value: Any, where: str, limit: int = MAX_NAME_LENGTH) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise EventError(where, f"must be a string of at most {limit} characters")
    return value


def _server_summary(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise EventError(where, "must be an object")
    choices = value.get("choices") or {}
    if not isinstance(choices, dict) or len(choices) > 100:
        raise EventError(f"{where}.choices", "must be an object of at most 100 options")
    for key, choice in choices.items():
        _text(key, f"{where}.choices")
        _text(choice, f"{where}.choices.{key[:40]}", MAX_IMAGE_LENGTH)
    return {
        "profile": _text(value.get("profile"), f"{where}.profile"),
        "choices": choices,
        "image": _text(value.get("image"), f"{where}.image", MAX_IMAGE_LENGTH),
        "cpu_guarantee": _number(value.get("cpu_guarantee"), f"{where}.cpu_guarantee"),
        "cpu_limit": _number(value.get("cpu_limit"), f"{where}.cpu_limit"),
        "mem_guarantee": _number(value.get("mem_guarantee"), f"{where}.mem_guarantee", whole=True),
        "mem_limit": _number(value.get("mem_limit"), f"{where}.mem_limit", whole=True),
        "gpu_count": _number(value.get("gpu_count"), f"{where}.gpu_count", whole=True) or 0,
        "gpu_type": _text(value.get("gpu_type"), f"{where}.gpu_type"),
        "instance_type": _text(value.get("instance_type"), f"{where}.instance_type"),
    }


def parse_event(raw: Any, where: str = "event", *, now_ms: int) -> Event:
    """The typed event in a JSON object the spawners posted; EventError if malformed."""
    if not isinstance(raw, dict):
        raise EventError(where, "must be an object")
    kind = raw.get("type")
    username = _name(raw.get("username"), f"{where}.username")
    if kind == "start":
        summary = _server_summary(raw.get("server"), f"{where}.server")
        return ServerStarted(
            ServerStart.from_summary(
                username,
                _name(raw.get("server_name"), f"{where}.server_name", empty=True),
                parse_time(raw.get("started"), f"{where}.started"),
                summary,
                _names(raw.get("groups"), f"{where}.groups"),
            )
        )
    if kind == "stop":
        reason = raw.get("reason", "user")
        if reason not in STOP_REASONS:
            raise EventError(f"{where}.reason", f"must be one of {', '.join(STOP_REASONS)}")
        started = raw.get("started")
        return ServerStopped(
            username=username,
            server_name=_name(raw.get("server_name"), f"{where}.server_name", empty=True),
            stopped_ms=parse_time(raw.get("stopped"), f"{where}.stopped"),
            reason=reason,
            started_ms=None if started is None else parse_time(started, f"{where}.started"),
        )
    if kind == "groups":
        at = raw.get("at")
        return GroupsChanged(
            username=username,
            at_ms=now_ms if at is None else parse_time(at, f"{where}.at"),
            groups=_names(raw["groups"], f"{where}.groups") if "groups" in raw else None,
            added=_names(raw.get("added"), f"{where}.added"),
            removed=_names(raw.get("removed"), f"{where}.removed"),
        )
    raise EventError(f"{where}.type", "must be start, stop or groups")
