"""Usage figures over any window: per user, group or profile, per step (OpenCost's allocation).

Figures (OpenCost's names): `sessions` (sessions that started in the window),
`server_hours`, `cpu_core_hours` (hours x the CPU guarantee, else the limit),
`memory_gib_hours` (hours x the memory guarantee, else the limit, in GiB) and
`gpu_hours`. Whole UTC days inside a window are read from the daily rollups; the
partial days at its edges, running sessions and sessions not yet rolled up are computed
from the sessions table, clipped to the window.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, Select, and_, case, false, func, literal, select
from sqlalchemy.orm import Session as DB

from .models import (
    DAY_MS,
    HOUR_MS,
    DailyGroupUsage,
    DailyProfileUsage,
    DailyUserGroupUsage,
    DailyUserProfileUsage,
    DailyUserUsage,
    MonthlyUserUsage,
    ServerSession,
    SessionGroup,
    from_ms,
    to_ms,
    whole_months,
)
from .rollups import FIGURES, NO_GROUP, GiB

AGGREGATES = ("user", "group", "profile")
# name -> [sessions, server_hours, cpu_core_hours, memory_gib_hours, gpu_hours]
Totals = dict[str, list[float]]
STEPS = {"1h": HOUR_MS, "1d": DAY_MS, "1w": 7 * DAY_MS}


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


def _least(a: ColumnElement, b: ColumnElement | int) -> ColumnElement:
    return case((a < b, a), else_=b)


def _greatest(a: ColumnElement, b: ColumnElement) -> ColumnElement:
    return case((a > b, a), else_=b)


def _key_column(aggregate: str):
    if aggregate == "user":
        # an expression, not the column: else SQLite groups along the (username, start)
        # index and reads every session instead of the few in the window
        return func.coalesce(ServerSession.username, "")
    if aggregate == "profile":
        return func.coalesce(ServerSession.profile, "")
    return func.coalesce(SessionGroup.group_name, NO_GROUP)


@dataclass(frozen=True)
class NameFilter:
    """Only these names (`keep`), or all but these; `collapse_to`: one row for all that pass."""

    names: frozenset[str]
    keep: bool = True
    collapse_to: str | None = None

    def where(self, key: ColumnElement) -> ColumnElement:
        return key.in_(self.names) if self.keep else ~key.in_(self.names)


def _grouped(query: Select, key: ColumnElement, names: NameFilter | None) -> Select:
    """`query` grouped by `key`, or collapsed to one row as `names` says."""
    if names is None:
        return query.group_by(key)
    query = query.where(names.where(key))
    return query if names.collapse_to is not None else query.group_by(key)


def _key_select(key: ColumnElement, names: NameFilter | None) -> ColumnElement:
    return literal(names.collapse_to) if names is not None and names.collapse_to is not None else key


def _raw(
    db: DB,
    totals: Totals,
    aggregate: str,
    a: int,
    b: int,
    now_ms: int,
    *,
    unrolled_only: bool,
    username: str | None,
    max_duration_ms: int,
    names: NameFilter | None = None,
) -> None:
    """Add sessions overlapping [a, b), clipped to it, to `totals`."""
    stop = func.coalesce(ServerSession.stopped_ms, now_ms)
    overlap = _least(stop, b) - _greatest(ServerSession.started_ms, literal(a))
    cpu = func.coalesce(ServerSession.cpu_guarantee, ServerSession.cpu_limit, 0.0)
    memory = func.coalesce(ServerSession.mem_guarantee_bytes, ServerSession.mem_limit_bytes, 0)
    key = _key_column(aggregate)
    columns = (
        _key_select(key, names),
        func.sum(case((and_(ServerSession.started_ms >= a, ServerSession.started_ms < b), 1), else_=0)),
        func.sum(overlap) / HOUR_MS,
        func.sum(overlap * cpu) / HOUR_MS,
        func.sum(overlap * 1.0 * memory) / HOUR_MS / GiB,
        func.sum(overlap * ServerSession.gpu_count) / HOUR_MS,
    )
    closed = and_(
        ServerSession.stopped_ms.is_not(None),
        ServerSession.started_ms >= a - max_duration_ms,
        ServerSession.started_ms < b,
        ServerSession.stopped_ms > a,
    )
    running = and_(ServerSession.stopped_ms.is_(None), ServerSession.started_ms < b, literal(now_ms) > a)
    for condition in (closed, running):
        query = select(*columns).where(condition)
        if aggregate == "group":
            query = query.select_from(ServerSession).outerjoin(
                SessionGroup, SessionGroup.session_id == ServerSession.id
            )
        if unrolled_only:
            query = query.where(ServerSession.rolled_up == false())  # an indexable comparison
        if username is not None:
            query = query.where(ServerSession.username == username)
        for name, *values in db.execute(_grouped(query, key, names)):
            if all(v is None for v in values):
                continue  # a collapsed query over no rows
            row = totals[name]
            for i, value in enumerate(values):
                row[i] += float(value or 0)


_ROLLUP = {
    "user": (DailyUserUsage, DailyUserUsage.username),
    "group": (DailyGroupUsage, DailyGroupUsage.group_name),
    "profile": (DailyProfileUsage, DailyProfileUsage.profile),
}


_USER_ROLLUP = {
    "user": (DailyUserProfileUsage, DailyUserProfileUsage.username),
    "group": (DailyUserGroupUsage, DailyUserGroupUsage.group_name),
    "profile": (DailyUserProfileUsage, DailyUserProfileUsage.profile),
}


def _segments(aggregate: str, first_day: int, end_day: int, username: str | None):
    """(table, key column, row condition) to read for days [first_day, end_day): everyone by
    user reads whole calendar months from the monthly rollup, the rest from the daily ones
    (one person's from the per-user rollups)."""
    table, key = (_USER_ROLLUP if username is not None else _ROLLUP)[aggregate]
    if aggregate != "user" or username is not None:
        return [(table, key, and_(table.day >= first_day, table.day < end_day))]
    months, leftovers = whole_months(first_day, end_day)
    segments = [(table, key, and_(table.day >= a, table.day < b)) for a, b in leftovers]
    if months:
        monthly = MonthlyUserUsage
        condition = and_(monthly.month >= months.start, monthly.month < months.stop)
        segments.append((monthly, monthly.username, condition))
    return segments


def _rolled(
    db: DB,
    totals: Totals,
    aggregate: str,
    first_day: int,
    end_day: int,
    username: str | None,
    names: NameFilter | None = None,
) -> bool:
    """Add the rollups of days [first_day, end_day) to `totals`."""
    for table, key, condition in _segments(aggregate, first_day, end_day, username):
        query = select(_key_select(key, names), *(func.sum(getattr(table, f)) for f in FIGURES)).where(condition)
        if username is not None:
            query = query.where(table.username == username)
        for name, *values in db.execute(_grouped(query, key, names)):
            if all(v is None for v in values):
                continue
            row = totals[name]
            for i, value in enumerate(values):
                row[i] += float(value or 0)
    return True


def usage(
    db: DB,
    start_ms: int,
    end_ms: int,
    aggregate: str,
    now_ms: int,
    username: str | None = None,
    names: NameFilter | None = None,
    history: _History | None = None,
) -> dict[str, list[float]]:
    """name -> [sessions, server_hours, cpu_core_hours, memory_gib_hours, gpu_hours]."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0.0, 0.0])
    history = history or _History.of(db)
    raw = dict(now_ms=now_ms, username=username, max_duration_ms=history.max_duration_ms, names=names)
    first_day, end_day = -(-start_ms // DAY_MS), end_ms // DAY_MS
    if first_day < end_day and _rolled(db, totals, aggregate, first_day, end_day, username, names):
        if start_ms < first_day * DAY_MS:
            _raw(db, totals, aggregate, start_ms, first_day * DAY_MS, unrolled_only=False, **raw)
        if history.unrolled_since_ms is not None and history.unrolled_since_ms < end_day * DAY_MS:
            _raw(db, totals, aggregate, first_day * DAY_MS, end_day * DAY_MS, unrolled_only=True, **raw)
        if end_day * DAY_MS < end_ms:
            _raw(db, totals, aggregate, end_day * DAY_MS, end_ms, unrolled_only=False, **raw)
    else:
        _raw(db, totals, aggregate, start_ms, end_ms, unrolled_only=False, **raw)
    return totals


def _names_in(db: DB, start_ms: int, end_ms: int, aggregate: str, username: str | None) -> int:
    """How many names have usage in the window (from the rollups, plus unrolled sessions)."""
    if username is not None:
        return 1  # one person's profiles or groups are few; the rows are counted as made
    table, key = _ROLLUP[aggregate]
    rolled = db.scalar(
        select(func.count(func.distinct(key))).where(table.day >= start_ms // DAY_MS, table.day <= end_ms // DAY_MS)
    )
    return rolled or 0


@dataclass(frozen=True)
class _History:
    """What bounds the raw queries of a report: the longest session, and the start of the
    oldest session not yet in the rollups (None: all are). Read once per report."""

    max_duration_ms: int
    unrolled_since_ms: int | None

    @classmethod
    def of(cls, db: DB) -> _History:
        return cls(
            db.scalar(select(func.max(ServerSession.duration_ms))) or 0,
            db.scalar(select(func.min(ServerSession.started_ms)).where(ServerSession.rolled_up == false())),
        )


def allocation(
    db: DB,
    start_ms: int,
    end_ms: int,
    aggregate: str,
    now_ms: int,
    *,
    step: str | None = None,
    username: str | None = None,
    names: NameFilter | None = None,
    max_rows: int | None = None,
) -> list[dict]:
    """OpenCost-shaped allocation: one row per step and name, largest usage first.

    ValueError when there would be more than `max_rows` rows: the caller asks for a
    longer step or fewer names instead of a report nobody can read."""
    result = []
    history = _History.of(db)
    steps = buckets(start_ms, end_ms, step)
    if max_rows is not None and names is None and len(steps) > 1:
        # refuse before the work: every name that has usage in the window, in every step
        if len(steps) * _names_in(db, start_ms, end_ms, aggregate, username) > max_rows:
            raise ValueError(f"more than {max_rows} rows; use a longer step or a shorter window")
    for bucket_start, bucket_end in steps:
        totals = usage(db, bucket_start, bucket_end, aggregate, now_ms, username, names, history)
        window = {"start": iso(bucket_start), "end": iso(bucket_end)}
        rows = [
            {
                "name": name,
                "window": window,
                "sessions": int(values[0]),
                "server_hours": round(values[1], 6),
                "cpu_core_hours": round(values[2], 6),
                "memory_gib_hours": round(values[3], 6),
                "gpu_hours": round(values[4], 6),
            }
            for name, values in totals.items()
        ]
        rows.sort(key=lambda r: (-r["server_hours"], r["name"]))
        result.extend(rows)
        if max_rows is not None and len(result) > max_rows:
            raise ValueError(f"more than {max_rows} rows; use a longer step or a shorter window")
    return result
