"""Cost over any window: per user, group or profile, per step, beside the usage figures
(and home storage, `pv_cost`, from storage.py).

A name's cost is a `CostRow` (figures.py). A window is read as `whole_days` splits it:
the whole UTC days from the cost rollups, the rest costed here from the sessions, clipped
to the window, with the same `SessionCoster` as the rollups. The API calls the figures
by OpenCost's names (`cpuCost`, `ramCost`, `gpuCost`, `totalCost`: opencost.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import and_, false, or_, select
from sqlalchemy.orm import Session as DB

from .costs import CostBasis, SessionCoster
from .db import in_one_snapshot
from .figures import COST_FIGURES, NO_COST, NO_USAGE, SESSION_COLUMNS, CostRow, resources_of
from .models import DailyUserGroupCost, DailyUserProfileCost, MonthlyUserCost, ServerSession
from .opencost import AGGREGATES, buckets, iso
from .reports import usage
from .rollups import groups_of
from .storage import storage_cost
from .whole_days import Piece, Reading, add_up

# the cost rollup that answers a report by each aggregate (everyone's, or one person's)
_ROLLUP = {
    "user": (DailyUserProfileCost, DailyUserProfileCost.username),
    "group": (DailyUserGroupCost, DailyUserGroupCost.group_name),
    "profile": (DailyUserProfileCost, DailyUserProfileCost.profile),
}


@dataclass
class _Cost(Reading):
    """Cost as `whole_days.add_up` reads it: the rollups summed in SQL, the sessions of the
    rest costed here day by day (the price in force each day)."""

    row = CostRow
    rolled_up = "cost_rolled_up"
    coster: SessionCoster = field(kw_only=True)

    def rolled(self, days: range) -> None:
        self.add_rollups(_ROLLUP[self.aggregate], (MonthlyUserCost, MonthlyUserCost.username), days, COST_FIGURES)

    def raw(self, piece: Piece) -> None:
        """Cost sessions overlapping the piece, clipped to it."""
        a, b = piece.start_ms, piece.end_ms
        closed = and_(ServerSession.stopped_ms.is_not(None), ServerSession.stopped_ms > a)
        if not piece.unrolled_only:  # bounds the index range: no closed session is longer than the longest
            closed = and_(closed, ServerSession.started_ms >= a - self.bounds.max_duration_ms)
        running = ServerSession.stopped_ms.is_(None)
        query = select(*SESSION_COLUMNS).where(ServerSession.started_ms < b, or_(closed, running))
        if piece.unrolled_only:
            query = query.where(ServerSession.cost_rolled_up == false())  # the few not yet rolled up
        if self.username is not None:
            query = query.where(ServerSession.username == self.username)
        rows = self.db.execute(query).all()
        groups = groups_of(self.db, [r.id for r in rows]) if self.aggregate == "group" else {}
        for r in rows:
            stop = r.stopped_ms if r.stopped_ms is not None else self.now_ms
            start, end = max(r.started_ms, a), min(stop, b)
            if end <= start:
                continue
            # the session's cost, day by day (loops written out: thousands of sessions a report)
            figures = [0.0] * len(COST_FIGURES)
            for _, day_figures in self.coster.days(resources_of(r), start, end):
                for i, value in enumerate(day_figures):
                    figures[i] += value
            if self.aggregate == "group":
                names = self.coster.basis.shares(groups.get(r.id, ())).items()
            else:
                names = [(r.username if self.aggregate == "user" else (r.profile or ""), 1.0)]
            for name, share in names:
                row = self.totals[name]
                for i, value in enumerate(figures):
                    row[i] += value * share


@in_one_snapshot
def cost(
    db: DB,
    basis: CostBasis,
    start_ms: int,
    end_ms: int,
    aggregate: str,
    now_ms: int,
    username: str | None = None,
    coster: SessionCoster | None = None,
) -> dict[str, CostRow]:
    """name -> what its servers cost over [start_ms, end_ms)."""
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)}")
    reading = _Cost(db, aggregate, now_ms, username, coster=coster or SessionCoster(basis))
    return add_up(reading, start_ms, end_ms)


@in_one_snapshot
def cost_allocation(
    db: DB,
    basis: CostBasis,
    start_ms: int,
    end_ms: int,
    aggregate: str,
    now_ms: int,
    *,
    step: str | None = None,
    username: str | None = None,
) -> list[dict]:
    """One row per step and name, largest total cost first: usage and cost side by side."""
    result = []
    coster = SessionCoster(basis)
    for bucket_start, bucket_end in buckets(start_ms, end_ms, step):
        money = cost(db, basis, bucket_start, bucket_end, aggregate, now_ms, username, coster)
        storage = storage_cost(db, basis, bucket_start, min(bucket_end, now_ms), aggregate, username)
        used = usage(db, bucket_start, bucket_end, aggregate, now_ms, username)
        window = {"start": iso(bucket_start), "end": iso(bucket_end)}
        rows = []
        for name in sorted(set(money) | set(used) | set(storage)):
            cpu, ram, gpu, unpriced = money.get(name, NO_COST)
            sessions, server_hours, cpu_core_hours, memory_gib_hours, gpu_hours = used.get(name, NO_USAGE)
            # money: a short session costs little
            cpu, ram, gpu, pv = (round(v, 9) for v in (cpu, ram, gpu, storage.get(name, 0.0)))
            rows.append(
                {
                    "name": name,
                    "window": window,
                    "sessions": int(sessions),
                    "server_hours": round(server_hours, 6),
                    "cpu_core_hours": round(cpu_core_hours, 6),
                    "memory_gib_hours": round(memory_gib_hours, 6),
                    "gpu_hours": round(gpu_hours, 6),
                    "cpu_cost": cpu,
                    "ram_cost": ram,
                    "gpu_cost": gpu,
                    "pv_cost": pv,  # home storage (OpenCost's persistent volumes)
                    "total_cost": round(cpu + ram + gpu + pv, 9),  # the parts as shown add up to it
                    "unpriced_hours": round(unpriced, 6),
                }
            )
        rows.sort(key=lambda r: (-r["total_cost"], r["name"]))
        result.extend(rows)
    return result
