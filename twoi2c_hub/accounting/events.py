"""What happens to servers and groups, as typed events: `ServerStarted`, `ServerStopped`
and `GroupsChanged`, what `recording.record` takes.

The spawners post them as JSON (`{"type": "start" | "stop" | "groups", ...}`); `posted`
checks those once where they come in, and raises `EventError` naming the field that is
wrong (`events[0].server.cpu_limit`). Recording them never sees an unchecked value.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Union

from ..catalog.summary import ServerSummary
from .models import to_ms

# the earliest and latest start or stop times an event may carry
EARLIEST_MS = to_ms(datetime(2000, 1, 1, tzinfo=UTC))
LATEST_MS = to_ms(datetime(2200, 1, 1, tzinfo=UTC))
MAX_GROUPS = 1000


class EventError(ValueError):
    """An event that cannot be recorded: `field` is its path (`events[0].server.cpu_limit`)."""

    def __init__(self, field: str, problem: str, value: Any = None):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
        self.value = value  # what was given there


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
        cls, username: str, server_name: str, started_ms: int, summary: ServerSummary, groups: Iterable[str]
    ) -> ServerStart:
        """From the summary the spawners post and annotate their servers with."""
        return cls(
            username=username,
            server_name=server_name,
            started_ms=started_ms,
            profile=summary.profile,
            choices=summary.choices,
            image=summary.image,
            cpu_guarantee=summary.cpu_guarantee_cores,
            cpu_limit=summary.cpu_limit_cores,
            mem_guarantee_bytes=summary.mem_guarantee_bytes,
            mem_limit_bytes=summary.mem_limit_bytes,
            gpu_count=summary.gpu_count,
            gpu_type=summary.gpu_type,
            instance_type=summary.instance_type,
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
