"""Cost over any window: per user, group or profile, per step, beside the usage figures
(and home storage, `pv_cost`, from storage.py).

Whole UTC days inside a window are read from the cost rollups; the partial days at its
edges, running sessions and sessions not yet rolled up are costed here, clipped to the
window, with the same `SessionCoster`. The rows use OpenCost's names (`cpuCost`, `ramCost`,
`gpuCost`, `totalCost`) in the API; here they are snake_case like the usage rows.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import and_, false, func, or_, select
from sqlalchemy.orm import Session as DB

from .costs import COST_FIGURES, CostBasis, SessionCoster, groups_of, resources_of
from .costs import SESSION_COLUMNS as COLUMNS
from .models import DAY_MS, DailyUserGroupCost, DailyUserProfileCost, MonthlyUserCost, ServerSession, whole_months
from .reports import AGGREGATES, buckets, iso, usage
from .storage import storage_cost

CostTotals = dict[str, list[float]]  # name -> [cpu_cost, ram_cost, gpu_cost, unpriced_hours]


def _rolled(db: DB, totals: CostTotals, aggregate: str, first_day: int, end_day: int, username: str | None) -> None:
    """Add the cost rollups of days [first_day, end_day) to `totals`: everyone by user reads
    whole calendar months from the monthly rollup, the rest from the daily ones."""
    if aggregate == "group":
        segments = [(DailyUserGroupCost, DailyUserGroupCost.group_name, first_day, end_day)]
    elif aggregate == "profile" or username is not None:
        table = DailyUserProfileCost
        segments = [(table, table.username if aggregate == "user" else table.profile, first_day, end_day)]
    else:
        months, leftovers = whole_months(first_day, end_day)
        segments = [(DailyUserProfileCost, DailyUserProfileCost.username, a, b) for a, b in leftovers]
        if months:
            segments.append((MonthlyUserCost, MonthlyUserCost.username, months.start, months.stop))
    for table, key, low, high in segments:
        column = table.month if table is MonthlyUserCost else table.day
        query = (
            select(key, *(func.sum(getattr(table, f)) for f in COST_FIGURES))
            .where(column >= low, column < high)
            .group_by(key)
        )
        if username is not None:
            query = query.where(table.username == username)
        for name, *values in db.execute(query):
            row = totals[name]
            for i, value in enumerate(values):
                row[i] += float(value or 0)


def _raw(
    db: DB,
    totals: CostTotals,
    coster: SessionCoster,
    aggregate: str,
    a: int,
    b: int,
    now_ms: int,
    *,
    unrolled_only: bool,
    username: str | None,
    max_duration_ms: int,
) -> None:
    """Cost sessions overlapping [a, b), clipped to it, into `totals`."""
    closed = and_(ServerSession.stopped_ms.is_not(None), ServerSession.stopped_ms > a)
    if not unrolled_only:  # bounds the index range: no closed session is longer than the longest
        closed = and_(closed, ServerSession.started_ms >= a - max_duration_ms)
    running = ServerSession.stopped_ms.is_(None)
    query = select(*COLUMNS).where(ServerSession.started_ms < b, or_(closed, running))
    if unrolled_only:
        query = query.where(ServerSession.cost_rolled_up == false())  # the few not yet rolled up
    if username is not None:
        query = query.where(ServerSession.username == username)
    rows = db.execute(query).all()
    groups = groups_of(db, [r.id for r in rows]) if aggregate == "group" else {}
    for r in rows:
        stop = r.stopped_ms if r.stopped_ms is not None else now_ms
        start, end = max(r.started_ms, a), min(stop, b)
        if end <= start:
            continue
        figures = [0.0] * len(COST_FIGURES)
        for _, day_figures in coster.days(resources_of(r), start, end):
            for i, value in enumerate(day_figures):
                figures[i] += value
        if aggregate == "group":
            names = coster.basis.shares(groups.get(r.id, ())).items()
        else:
            names = [(r.username if aggregate == "user" else (r.profile or ""), 1.0)]
        for name, share in names:
            row = totals[name]
            for i, value in enumerate(figures):
                row[i] += value * share


def cost(
    db: DB,
    basis: CostBasis,
    start_ms: int,
    end_ms: int,
    aggregate: str,
    now_ms: int,
    username: str | None = None,
    coster: SessionCoster | None = None,
) -> CostTotals:
    """name -> [cpu_cost, ram_cost, gpu_cost, unpriced_hours] over [start_ms, end_ms)."""
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)}")
    totals: CostTotals = defaultdict(lambda: [0.0] * len(COST_FIGURES))
    coster = coster or SessionCoster(basis)
    max_duration = db.scalar(select(func.max(ServerSession.duration_ms))) or 0
    unrolled_since = db.scalar(
        select(func.min(ServerSession.started_ms)).where(ServerSession.cost_rolled_up == false())
    )
    raw = dict(now_ms=now_ms, username=username, max_duration_ms=max_duration)
    first_day, end_day = -(-start_ms // DAY_MS), end_ms // DAY_MS
    if first_day < end_day:
        _rolled(db, totals, aggregate, first_day, end_day, username)
        if start_ms < first_day * DAY_MS:
            _raw(db, totals, coster, aggregate, start_ms, first_day * DAY_MS, unrolled_only=False, **raw)
        if unrolled_since is not None and unrolled_since < end_day * DAY_MS:
            _raw(db, totals, coster, aggregate, first_day * DAY_MS, end_day * DAY_MS, unrolled_only=True, **raw)
        if end_day * DAY_MS < end_ms:
            _raw(db, totals, coster, aggregate, end_day * DAY_MS, end_ms, unrolled_only=False, **raw)
    else:
        _raw(db, totals, coster, aggregate, start_ms, end_ms, unrolled_only=False, **raw)
    return totals


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
            cpu, ram, gpu, unpriced = money.get(name, [0.0] * 4)
            # money: a short session costs little
            cpu, ram, gpu, pv = (round(v, 9) for v in (cpu, ram, gpu, storage.get(name, 0.0)))
            sessions, server_hours, cpu_hours, memory_hours, gpu_hours = used.get(name, [0, 0.0, 0.0, 0.0, 0.0])
            rows.append(
                {
                    "name": name,
                    "window": window,
                    "sessions": int(sessions),
                    "server_hours": round(server_hours, 6),
                    "cpu_core_hours": round(cpu_hours, 6),
                    "memory_gib_hours": round(memory_hours, 6),
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
