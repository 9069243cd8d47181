"""One person's spending so far: what the spawn-time budget check reads.

The same figures as `cost()` and `usage()` give for one person over [start, now) (a test
compares them), in at most three queries whose statements are built once: the person's
whole UTC days from the per-person daily rollups (money, and resource-hours when a budget
counts them), and the person's own sessions for the rest -- the partial days at the edges,
running sessions, and sessions not yet rolled up. The sessions are found through the index
on (username, started_ms), bounded by the longest closed session and the oldest running
one, both read inside the same statement.
"""

from __future__ import annotations

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.orm import Session as DB

from ..catalog import GiB
from .costs import COST_FIGURES, SESSION_COLUMNS, SessionCoster, resources_of
from .models import DAY_MS, HOUR_MS, DailyUserProfileCost, DailyUserProfileUsage, ServerSession
from .reports import _least

UNITS = ("money", "server_hours", "cpu_core_hours", "memory_gib_hours", "gpu_hours")
_HOURS = UNITS[1:]  # the usage rollups' columns of the same names


def _rolled_by_day(table, figures):
    return (
        select(table.day, *(func.sum(getattr(table, f)) for f in figures))
        .where(
            table.username == bindparam("username"),
            table.day >= bindparam("first_day"),
            table.day < bindparam("end_day"),
        )
        .group_by(table.day)
    )


_ROLLED_COST = _rolled_by_day(DailyUserProfileCost, COST_FIGURES[:3])
_ROLLED_HOURS = _rolled_by_day(DailyUserProfileUsage, _HOURS)
_LONGEST = select(func.coalesce(func.max(ServerSession.duration_ms), 0)).scalar_subquery()
_OLDEST_RUNNING = select(func.min(ServerSession.started_ms)).where(ServerSession.stopped_ms.is_(None))
_SESSIONS = select(*SESSION_COLUMNS, ServerSession.rolled_up, ServerSession.cost_rolled_up).where(
    ServerSession.username == bindparam("username"),
    ServerSession.started_ms < bindparam("now"),
    ServerSession.started_ms
    >= _least(
        bindparam("start") - _LONGEST,
        func.coalesce(_OLDEST_RUNNING.scalar_subquery(), bindparam("start")),
    ),
    or_(ServerSession.stopped_ms.is_(None), ServerSession.stopped_ms > bindparam("start")),
)


class PersonHistory:
    """One person's rolled-up days and own sessions from `since` to `now`, read once (two or
    three queries); `spent(start)` for any start at or after `since` is then worked out in
    memory -- the check's spending so far, and when a rolling budget lets them start again."""

    def __init__(
        self, db: DB, coster: SessionCoster | None, username: str, since: int, now: int, units: frozenset[str]
    ):
        self.coster, self.now, self.units = coster, now, units
        self.money, self.hours = "money" in units, bool(units & set(_HOURS))
        self.end_day = now // DAY_MS
        self.rolled: dict[int, list[float]] = {}  # day -> [money, *hours] of the rollups
        days = {"username": username, "first_day": -(-since // DAY_MS), "end_day": self.end_day}
        if days["first_day"] < self.end_day:
            if self.money:
                for day, *values in db.execute(_ROLLED_COST, days):
                    self.rolled.setdefault(day, [0.0] * 5)[0] = sum(v or 0.0 for v in values)
            if self.hours:
                for day, *values in db.execute(_ROLLED_HOURS, days):
                    self.rolled.setdefault(day, [0.0] * 5)[1:] = [v or 0.0 for v in values]
        self.sessions = db.execute(_SESSIONS, {"username": username, "now": now, "start": since}).all()

    def spent(self, start_ms: int) -> dict[str, float]:
        """unit -> what was spent in [start_ms, now): money is compute only (cpu, ram, gpu
        cost); home storage is added by the caller."""
        totals = [0.0] * 5
        first_day = -(-start_ms // DAY_MS)
        whole = first_day < self.end_day
        if whole:
            for day, values in self.rolled.items():
                if day >= first_day:
                    for i, value in enumerate(values):
                        totals[i] += value
        middle = (first_day * DAY_MS, self.end_day * DAY_MS)
        edges = [(start_ms, middle[0]), (middle[1], self.now)] if whole else [(start_ms, self.now)]
        for r in self.sessions:
            stop = r.stopped_ms if r.stopped_ms is not None else self.now
            if self.money:
                pieces = edges if r.cost_rolled_up or not whole else [*edges, middle]
                for a, b in _clipped(pieces, r.started_ms, stop):
                    for _, figures in self.coster.days(resources_of(r), a, b):
                        totals[0] += figures[0] + figures[1] + figures[2]
            if self.hours:
                cpu = r.cpu_guarantee or r.cpu_limit or 0.0  # as the rollups count them
                memory_gib = (r.mem_guarantee_bytes or r.mem_limit_bytes or 0) / GiB
                pieces = edges if r.rolled_up or not whole else [*edges, middle]
                for a, b in _clipped(pieces, r.started_ms, stop):
                    h = (b - a) / HOUR_MS
                    for i, value in enumerate((h, h * cpu, h * memory_gib, h * (r.gpu_count or 0)), start=1):
                        totals[i] += value
        return dict(zip(UNITS, totals, strict=True))


def _clipped(pieces, started: int, stopped: int):
    for a, b in pieces:
        a, b = max(a, started), min(b, stopped)
        if b > a:
            yield a, b
