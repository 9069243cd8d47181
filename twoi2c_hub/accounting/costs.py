"""What the sessions cost: each session-day at the prices in force that day, by person,
group and profile.

A session's price per hour comes from `catalog.Pricing.hourly` (its resources, its
instance type, the table in force on the day). A person in several groups is counted by
the hub's rule: `split` (each group an equal share), `each` (every group the whole cost,
so groups add up to more than the hub), or `primary` (the first of the listed primary
groups the person was in, else their first group by name). The figures:
`cpu_cost`, `ram_cost`, `gpu_cost` (their sum: `total_cost`), and `unpriced_hours`:
server-hours no price in force covered (before the first table, say), charged nothing.

Closed sessions are rolled up per UTC day into `cost_daily_user_profile` and
`cost_daily_user_group`. Those rollups hold money, so they depend on the prices: each is
computed with a `CostBasis`, whose digest is kept in `cost_basis`; when the prices, the
instance table or the rule change, every rollup is computed again from the sessions.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Literal

from sqlalchemy import delete, update
from sqlalchemy.orm import Session as DB

from ..catalog import InstanceType, Pricing, PricingError, ServerResources
from .figures import COST_FIGURES, CostRow, add, resources_of
from .models import (
    DAY_MS,
    HOUR_MS,
    CostBasisRow,
    DailyUserGroupCost,
    DailyUserProfileCost,
    MonthlyUserCost,
    ServerSession,
    month_of,
)
from .rollups import NO_GROUP, closed_sessions, day_parts, groups_of, upsert_add

GroupRule = Literal["split", "each", "primary"]
GROUP_RULES = ("split", "each", "primary")
COST_ROLLUPS = {
    DailyUserProfileCost: ("day", "username", "profile"),
    DailyUserGroupCost: ("day", "username", "group_name"),
    MonthlyUserCost: ("month", "username"),
}


@dataclass(frozen=True)
class CostBasis:
    """Everything a cost depends on besides the sessions."""

    pricing: Pricing
    instances: dict[str, InstanceType] = field(default_factory=dict)
    group_rule: GroupRule = "split"
    primary_groups: tuple[str, ...] = ()

    def digest(self) -> str:
        instances = {n: repr(i) for n, i in sorted(self.instances.items())}
        text = json.dumps([repr(self.pricing), instances, self.group_rule, self.primary_groups], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def shares(self, groups: Iterable[str]) -> dict[str, float]:
        """The part of a session's cost each of its groups is charged."""
        groups = sorted(set(groups))
        if not groups:
            return {NO_GROUP: 1.0}
        if self.group_rule == "each":
            return dict.fromkeys(groups, 1.0)
        if self.group_rule == "primary":
            primary = next((g for g in self.primary_groups if g in groups), groups[0])
            return {primary: 1.0}
        return dict.fromkeys(groups, 1.0 / len(groups))


def day_of(day: int) -> date:
    return datetime.fromtimestamp(day * DAY_MS / 1000, tz=UTC).date()


class SessionCoster:
    """Costs of session-days, the price per hour computed once per server and table."""

    def __init__(self, basis: CostBasis):
        self.basis = basis
        self._hourly: dict = {}

    def hourly(self, resources: ServerResources, day: int) -> tuple[float, float, float] | None:
        """(cpu, ram, gpu) per hour on `day`, None if no price covers it."""
        table = self.basis.pricing.in_force(day_of(day))
        key = (resources, table and table.effective)
        if key not in self._hourly:
            try:
                self._hourly[key] = tuple(self.basis.pricing.hourly(resources, day_of(day), self.basis.instances))
            except PricingError:
                self._hourly[key] = None
        return self._hourly[key]

    def days(self, resources: ServerResources, start_ms: int, stop_ms: int) -> Iterator[tuple[int, CostRow]]:
        """(day, its cost) for each UTC day of [start, stop)."""
        for day, ms in day_parts(start_ms, stop_ms):
            hours = ms / HOUR_MS
            price = self.hourly(resources, day)
            if price is None:
                yield day, CostRow(0.0, 0.0, 0.0, hours)
            else:
                yield day, CostRow(hours * price[0], hours * price[1], hours * price[2], 0.0)


def ensure_basis(db: DB, basis: CostBasis, now_ms: int) -> bool:
    """Make the cost rollups ones of `basis`: if they were computed with another, empty
    them and mark every session to be rolled up again. True if that happened."""
    digest = basis.digest()
    row = db.get(CostBasisRow, 1)
    if row is not None and row.digest == digest:
        return False
    for table in COST_ROLLUPS:
        db.execute(delete(table))
    db.execute(update(ServerSession).where(ServerSession.cost_rolled_up.is_(True)).values(cost_rolled_up=False))
    if row is None:
        db.add(CostBasisRow(id=1, digest=digest, computed_ms=now_ms))
    else:
        row.digest, row.computed_ms = digest, now_ms
    db.commit()
    return True


def roll_up_costs(db: DB, basis: CostBasis, now_ms: int, grace_ms: int = 0, batch: int = 20_000) -> int:
    """Add the cost of sessions closed before `now_ms - grace_ms` to the cost rollups."""
    ensure_basis(db, basis, now_ms)
    coster = SessionCoster(basis)
    done = 0
    for rows in closed_sessions(db, ServerSession.cost_rolled_up, now_ms - grace_ms, batch):
        groups = groups_of(db, [r.id for r in rows])
        totals = {table: defaultdict(lambda: [0.0, 0.0, 0.0, 0.0]) for table in COST_ROLLUPS}
        for r in rows:
            shares = basis.shares(groups.get(r.id, ()))
            for day, figures in coster.days(resources_of(r), r.started_ms, r.stopped_ms):
                add(totals[DailyUserProfileCost][(day, r.username, r.profile or "")], figures)
                add(totals[MonthlyUserCost][(month_of(day), r.username)], figures)
                for group, share in shares.items():
                    add(totals[DailyUserGroupCost][(day, r.username, group)], figures, share)
        for table, keys in COST_ROLLUPS.items():
            upsert_add(db, table, keys, totals[table], COST_FIGURES)
        ids = [r.id for r in rows]
        db.execute(update(ServerSession).where(ServerSession.id.in_(ids)).values(cost_rolled_up=True))
        db.commit()
        done += len(rows)
    return done
