"""A row of figures, typed, with its units in its names: what the rollups store, the
reports add up, the budgets count and the API shows.

`UsageRow` is a name's usage over a window (sessions that started in it, and server-,
CPU core-, memory GiB- and GPU-hours); `CostRow` what it cost (OpenCost's parts, and the
hours no price covered). Both are tuples too, so a row can be summed column by column.

A session counts, each hour it runs, its CPU and memory guarantee, else its limit (a
limit alone stands for the request, as in Kubernetes: `catalog.charged`'s "requests"
rule). The rule is here once for Python (`reserved`) and once for SQL (`RESERVED_*`, the
reports that add sessions up in the database); a test holds the two to each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from sqlalchemy import func

from ..catalog import ServerResources
from ..catalog.pricing import Quantities, charged
from .models import HOUR_MS, ServerSession


class UsageRow(NamedTuple):
    """A name's usage over a window."""

    sessions: float  # how many started in the window (a whole number, added up as a float)
    server_hours: float
    cpu_core_hours: float
    memory_gib_hours: float
    gpu_hours: float


class CostRow(NamedTuple):
    """What a name's servers cost over a window, in OpenCost's parts."""

    cpu_cost: float
    ram_cost: float
    gpu_cost: float
    unpriced_hours: float  # server-hours no price in force covered, charged nothing

    @property
    def compute_cost(self) -> float:
        """CPU, memory and GPUs (home storage is costed apart, in storage.py)."""
        return self.cpu_cost + self.ram_cost + self.gpu_cost


class UseRow(NamedTuple):
    """What a name's measured servers used and reserved over a window, over the time
    measured: sums weighted by milliseconds measured (`use.efficiency` makes averages and
    efficiencies of them). A session's figures are spread evenly over its time, so a day
    or a window holds the share of them that its part of the session is."""

    sessions: float  # measured sessions (a whole number, added up as a float)
    measured_ms: float
    cpu_core_ms: float
    cpu_reserved_core_ms: float  # the guarantee, else the limit, over the time measured
    mem_byte_ms: float
    mem_reserved_byte_ms: float


FIGURES = UsageRow._fields
HOURS = FIGURES[1:]  # the figures a usage budget can count
COST_FIGURES = CostRow._fields
NO_USAGE = UsageRow(0, 0.0, 0.0, 0.0, 0.0)
NO_COST = CostRow(0.0, 0.0, 0.0, 0.0)
# a name -> its figures, added up as a report reads them (a list of each row's columns)
Totals = dict[str, list[float]]


def add(row: list[float], figures, share: float = 1) -> None:
    """Add `figures` (a row's columns, in order), or a `share` of them, to the totals `row`."""
    if share == 1:
        for i, value in enumerate(figures):
            row[i] += value
    else:
        for i, value in enumerate(figures):
            row[i] += value * share


def total_of(rows: Iterable[Mapping[str, float]], columns: Iterable[str]) -> dict[str, float]:
    """A report's rows added up column by column: its total row. Right for a report by
    user or by profile (each session is in one row), not by group: a person in several
    groups is in each of their rows (their hours always, their cost by the "each" rule),
    so a report by group totals the same window read by user instead."""
    rows = list(rows)
    return {column: sum(row[column] for row in rows) for column in columns}


def reserved(resources: ServerResources) -> Quantities:
    """What one hour of a server counts for: its guarantee, else its limit."""
    return charged(resources, "requests")


def used(hourly: Quantities, ms: int, started: bool) -> UsageRow:
    """The usage of `ms` milliseconds of a server that counts `hourly` an hour."""
    hours = ms / HOUR_MS
    return UsageRow(1 if started else 0, hours, hours * hourly.cpu, hours * hourly.memory_gib, hours * hourly.gpus)


# `reserved` in SQL, over the sessions table
RESERVED_CPU_CORES = func.coalesce(ServerSession.cpu_guarantee, ServerSession.cpu_limit, 0.0)
RESERVED_MEMORY_BYTES = func.coalesce(ServerSession.mem_guarantee_bytes, ServerSession.mem_limit_bytes, 0)

# what is read of a session to cost it or roll it up
SESSION_COLUMNS = (
    ServerSession.id,
    ServerSession.username,
    ServerSession.profile,
    ServerSession.started_ms,
    ServerSession.stopped_ms,
    ServerSession.cpu_guarantee,
    ServerSession.cpu_limit,
    ServerSession.mem_guarantee_bytes,
    ServerSession.mem_limit_bytes,
    ServerSession.gpu_count,
    ServerSession.gpu_type,
    ServerSession.instance_type,
)


def resources_of(row) -> ServerResources:
    """The server a session row (with SESSION_COLUMNS) ran."""
    return ServerResources(
        row.cpu_guarantee,
        row.cpu_limit,
        row.mem_guarantee_bytes,
        row.mem_limit_bytes,
        row.gpu_count or 0,
        row.gpu_type,
        row.instance_type,
    )
