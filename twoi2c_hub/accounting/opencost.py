"""OpenCost's vocabulary, in one place: how a report is asked for (an aggregate, a step,
at most so many rows) and what its figures are called in the API.

The window grammar is OpenCost's too, in windows.py. Report rows carry our names, with
units in them (`memory_gib_hours`); the API answers in OpenCost's (`ramByteHours`, in
bytes), as `opencost_row` turns one into the other.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ..catalog import GiB
from .models import DAY_MS, HOUR_MS, from_ms, to_ms

AGGREGATES = ("user", "group", "profile")
# steps of a fixed length, from the window's start; "1mo" is calendar months
STEPS = {"1h": HOUR_MS, "1d": DAY_MS, "1w": 7 * DAY_MS}
STEP_CHOICES = (*STEPS, "1mo")
MAX_STEPS = 400  # in one report
MAX_ROWS = 20_000  # steps x names in one allocation: more is a report nobody reads, and costly

# our names -> OpenCost's, for the figures of an allocation (ramByteHours in bytes, not GiB)
USAGE_FIELDS = {
    "sessions": "sessions",
    "server_hours": "serverHours",
    "cpu_core_hours": "cpuCoreHours",
    "memory_gib_hours": "ramByteHours",
    "gpu_hours": "gpuHours",
}
COST_FIELDS = {
    **USAGE_FIELDS,
    "cpu_cost": "cpuCost",
    "ram_cost": "ramCost",
    "gpu_cost": "gpuCost",
    "pv_cost": "pvCost",  # home storage (OpenCost's persistent volumes)
    "total_cost": "totalCost",
    "unpriced_hours": "unpricedHours",
}


def columns(fields: dict[str, str]) -> list[str]:
    """A CSV answer's columns."""
    return ["window.start", "window.end", "name", *fields.values()]


def opencost_row(row: dict, fields: dict[str, str]) -> dict:
    """One report row in OpenCost's allocation shape and field names."""
    allocation = {"name": row["name"], "window": row["window"], "start": row["window"]["start"]}
    allocation["end"] = row["window"]["end"]
    for ours, theirs in fields.items():
        value = row[ours]
        allocation[theirs] = round(value * GiB, 1) if ours == "memory_gib_hours" else value
    return allocation


def allocation_sets(rows: list[dict], fields: dict[str, str]) -> list[dict]:
    """OpenCost's `data`: one object per step, mapping each name to its allocation."""
    sets: dict[str, dict] = {}
    for row in rows:
        sets.setdefault(row["window"]["start"], {})[row["name"]] = opencost_row(row, fields)
    return list(sets.values())


def iso(ms: int | None) -> str | None:
    moment = from_ms(ms)
    return None if moment is None else moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def buckets(start_ms: int, end_ms: int, step: str | None) -> list[tuple[int, int]]:
    """The window split into steps: fixed lengths from its start, or calendar months."""
    if not step:
        return [(start_ms, end_ms)]
    if step == "1mo":
        result, moment = [], start_ms
        while moment < end_ms:
            at = from_ms(moment)
            year, month = (at.year + at.month // 12, at.month % 12 + 1)
            first = datetime(year, month, 1, tzinfo=UTC)
            next_ms = min(to_ms(first), end_ms)
            result.append((moment, next_ms))
            moment = next_ms
        return result
    size = STEPS[step]
    return [(s, min(s + size, end_ms)) for s in range(start_ms, end_ms, size)]


def auto_step(start_ms: int, end_ms: int) -> str:
    """The finest step that keeps a chart of the window to MAX_STEPS buckets or fewer."""
    days = (end_ms - start_ms) / DAY_MS
    if days <= MAX_STEPS:
        return "1d"
    return "1w" if days / 7 <= MAX_STEPS else "1mo"


def check_steps(start_ms: int, end_ms: int, step: str | None) -> None:
    """ValueError if `step` cuts the window into more than MAX_STEPS steps."""
    if step not in (None, "1mo") and (end_ms - start_ms) / STEPS[step] > MAX_STEPS:
        raise ValueError(f"{step} steps over this window make more than {MAX_STEPS}; use a longer step")
