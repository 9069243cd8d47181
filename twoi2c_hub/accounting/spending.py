"""One person's spending so far: what the spawn-time budget check reads.

The same figures as `cost()` and `usage()` give for one person over [start, now) (a test
compares them), read the same way (`whole_days.split`), in at most three queries whose
statements are built once: the person's whole UTC days from the per-person daily rollups
(money, and resource-hours when a budget counts them), and the person's own sessions for
the rest -- the partial days at the edges, running sessions, and sessions not yet rolled
up. The sessions are found through the index on (username, started_ms), bounded by the
longest closed session and the oldest running one, both read inside the same statement.
"""

from __future__ import annotations

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.orm import Session as DB

from .costs import SessionCoster
from .db import one_snapshot
from .figures import HOURS, SESSION_COLUMNS, CostRow, reserved, resources_of, used
from .models import DailyUserProfileCost, DailyUserProfileUsage, ServerSession
from .whole_days import least, split

UNITS = ("money", *HOURS)


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


_ROLLED_COST = _rolled_by_day(DailyUserProfileCost, CostRow._fields[:3])
_ROLLED_HOURS = _rolled_by_day(DailyUserProfileUsage, HOURS)
_LONGEST = select(func.coalesce(func.max(ServerSession.duration_ms), 0)).scalar_subquery()
_OLDEST_RUNNING = select(func.min(ServerSession.started_ms)).where(ServerSession.stopped_ms.is_(None))
_SESSIONS = select(*SESSION_COLUMNS, ServerSession.rolled_up, ServerSession.cost_rolled_up).where(
    ServerSession.username == bindparam("username"),
    ServerSession.started_ms < bindparam("now"),
    ServerSession.started_ms
    >= least(
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
        self.money, self.hours = "money" in units, bool(units & set(HOURS))
        self.rolled: dict[int, list[float]] = {}  # day -> [money, *hours] of the rollups
        days = split(since, now).days
        with one_snapshot(db):
            if days:
                bounds = {"username": username, "first_day": days.start, "end_day": days.stop}
                if self.money:
                    for day, *values in db.execute(_ROLLED_COST, bounds):
                        costs = CostRow(*(v or 0.0 for v in values), 0.0).compute_cost
                        self.rolled.setdefault(day, [0.0] * 5)[0] = costs
                if self.hours:
                    for day, *values in db.execute(_ROLLED_HOURS, bounds):
                        self.rolled.setdefault(day, [0.0] * 5)[1:] = [v or 0.0 for v in values]
            rows = db.execute(_SESSIONS, {"username": username, "now": now, "start": since}).all()
        # each session with what it ran, and what an hour of it counts for (as the rollups count it)
        self.sessions = [(r, resources_of(r), reserved(resources_of(r))) for r in rows]

    def spent(self, start_ms: int) -> dict[str, float]:
        """unit -> what was spent in [start_ms, now): money is compute only (cpu, ram, gpu
        cost); home storage is added by the caller."""
        totals = [0.0] * 5
        window = split(start_ms, self.now)
        if window.days:
            for day, values in self.rolled.items():
                if day >= window.days.start:
                    for i, value in enumerate(values):
                        totals[i] += value
        edges = [p for p in window.pieces if not p.unrolled_only]
        everything = edges + [p for p in window.pieces if p.unrolled_only]  # a session not rolled up
        for r, resources, hourly in self.sessions:
            stop = r.stopped_ms if r.stopped_ms is not None else self.now
            if self.money:
                for a, b in _clipped(edges if r.cost_rolled_up else everything, r.started_ms, stop):
                    for _, figures in self.coster.days(resources, a, b):
                        totals[0] += figures.compute_cost
            if self.hours:
                for a, b in _clipped(edges if r.rolled_up else everything, r.started_ms, stop):
                    for i, value in enumerate(used(hourly, b - a, started=False)[1:], start=1):
                        totals[i] += value
        return dict(zip(UNITS, totals, strict=True))


def _clipped(pieces, started: int, stopped: int):
    for a, b, _ in pieces:
        a, b = max(a, started), min(b, stopped)
        if b > a:
            yield a, b
