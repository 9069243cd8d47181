"""Usage over any window: per user, group or profile, per step (OpenCost's allocation).

A name's figures are a `UsageRow` (figures.py): the sessions that started in the window,
and server-, CPU core-, memory GiB- and GPU-hours (CPU and memory: the guarantee, else the
limit). A window is read as `whole_days` splits it: the whole UTC days from the usage
rollups, the rest from the sessions table, clipped to the window; both summed in SQL.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, case, false, func, literal, select
from sqlalchemy.orm import Session as DB

from ..catalog import GiB
from .db import in_one_snapshot
from .figures import FIGURES, RESERVED_CPU_CORES, RESERVED_MEMORY_BYTES, UsageRow
from .models import DAY_MS, HOUR_MS, MonthlyUserUsage, ServerSession, SessionGroup
from .opencost import buckets, iso
from .rollups import NO_GROUP, READ_BY, READ_BY_PERSON
from .whole_days import Bounds, NameFilter, Piece, Reading, add_rows, add_up, greatest, grouped, key_select, least


def _key_column(aggregate: str):
    if aggregate == "user":
        # an expression, not the column: else SQLite groups along the (username, start)
        # index and reads every session instead of the few in the window
        return func.coalesce(ServerSession.username, "")
    if aggregate == "profile":
        return func.coalesce(ServerSession.profile, "")
    return func.coalesce(SessionGroup.group_name, NO_GROUP)


@dataclass
class _Usage(Reading):
    """Usage as `whole_days.add_up` reads it: the rollups summed in SQL, and the sessions of
    the rest clipped and summed in SQL too (a few rows per name come back)."""

    row = UsageRow
    rolled_up = "rolled_up"
    names: NameFilter | None = None

    def rolled(self, days: range) -> None:
        """Add the usage rollups of `days` (one person's from the per-person rollups)."""
        daily = (READ_BY_PERSON if self.username is not None else READ_BY)[self.aggregate]
        self.add_rollups(daily, (MonthlyUserUsage, MonthlyUserUsage.username), days, FIGURES, self.names)

    def raw(self, piece: Piece) -> None:
        """Add sessions overlapping the piece, clipped to it."""
        a, b = piece.start_ms, piece.end_ms
        stop = func.coalesce(ServerSession.stopped_ms, self.now_ms)
        overlap = least(stop, b) - greatest(ServerSession.started_ms, literal(a))
        key = _key_column(self.aggregate)
        columns = (
            key_select(key, self.names),
            func.sum(case((and_(ServerSession.started_ms >= a, ServerSession.started_ms < b), 1), else_=0)),
            func.sum(overlap) / HOUR_MS,
            func.sum(overlap * RESERVED_CPU_CORES) / HOUR_MS,
            func.sum(overlap * 1.0 * RESERVED_MEMORY_BYTES) / HOUR_MS / GiB,
            func.sum(overlap * ServerSession.gpu_count) / HOUR_MS,
        )
        closed = and_(
            ServerSession.stopped_ms.is_not(None),
            ServerSession.started_ms >= a - self.bounds.max_duration_ms,
            ServerSession.started_ms < b,
            ServerSession.stopped_ms > a,
        )
        running = and_(ServerSession.stopped_ms.is_(None), ServerSession.started_ms < b, literal(self.now_ms) > a)
        for condition in (closed, running):
            query = select(*columns).where(condition)
            if self.aggregate == "group":
                query = query.select_from(ServerSession).outerjoin(
                    SessionGroup, SessionGroup.session_id == ServerSession.id
                )
            if piece.unrolled_only:
                query = query.where(ServerSession.rolled_up == false())  # an indexable comparison
            if self.username is not None:
                query = query.where(ServerSession.username == self.username)
            add_rows(self.totals, self.db.execute(grouped(query, key, self.names)))


@in_one_snapshot
def usage(
    db: DB,
    start_ms: int,
    end_ms: int,
    aggregate: str,
    now_ms: int,
    username: str | None = None,
    names: NameFilter | None = None,
    bounds: Bounds | None = None,
) -> dict[str, UsageRow]:
    """name -> its usage over [start_ms, end_ms)."""
    return add_up(_Usage(db, aggregate, now_ms, username, bounds, names), start_ms, end_ms)


def _names_in(db: DB, start_ms: int, end_ms: int, aggregate: str, username: str | None) -> int:
    """How many names have usage in the window (from the rollups, plus unrolled sessions)."""
    if username is not None:
        return 1  # one person's profiles or groups are few; the rows are counted as made
    table, key = READ_BY[aggregate]
    rolled = db.scalar(
        select(func.count(func.distinct(key))).where(table.day >= start_ms // DAY_MS, table.day <= end_ms // DAY_MS)
    )
    return rolled or 0


@in_one_snapshot
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
    bounds = Bounds.of(db, ServerSession.rolled_up)
    steps = buckets(start_ms, end_ms, step)
    if max_rows is not None and names is None and len(steps) > 1:
        # refuse before the work: every name that has usage in the window, in every step
        if len(steps) * _names_in(db, start_ms, end_ms, aggregate, username) > max_rows:
            raise ValueError(f"more than {max_rows} rows; use a longer step or a shorter window")
    for bucket_start, bucket_end in steps:
        totals = usage(db, bucket_start, bucket_end, aggregate, now_ms, username, names, bounds)
        window = {"start": iso(bucket_start), "end": iso(bucket_end)}
        rows = [
            {
                "name": name,
                "window": window,
                "sessions": int(sessions),
                "server_hours": round(server_hours, 6),
                "cpu_core_hours": round(cpu_core_hours, 6),
                "memory_gib_hours": round(memory_gib_hours, 6),
                "gpu_hours": round(gpu_hours, 6),
            }
            for name, (sessions, server_hours, cpu_core_hours, memory_gib_hours, gpu_hours) in totals.items()
        ]
        rows.sort(key=lambda r: (-r["server_hours"], r["name"]))
        result.extend(rows)
        if max_rows is not None and len(result) > max_rows:
            raise ValueError(f"more than {max_rows} rows; use a longer step or a shorter window")
    return result
