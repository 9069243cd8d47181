"""The fleet's figures from what was collected: active users counted once (per hub,
cluster, community and fleet-wide), each community's money for a month, and the hubs
whose figures are stale. `twoi2c-hub fleet report` prints them; the fleet's pages and API
read the same functions.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...accounting import fleet as people_once
from ...accounting import fleet_store
from ...accounting.bills import read_bill
from ...accounting.fleet_money import FleetMonth, month_money, recovery, to_cents
from ...accounting.fleet_store import CollectedHub, day_number
from ...config.fleet import FleetConfig

# a hub not collected for this long has stale figures (a collection runs hourly or daily)
STALE_AFTER_MS = 26 * 3600 * 1000


def active_users(
    db: Session, fleet: FleetConfig, day: date, aggregate: people_once.Aggregate
) -> dict[str, people_once.ActiveUsers]:
    """Daily, weekly and monthly active users on `day` of every hub, cluster, community or
    the fleet, each person once per group."""
    return active_users_by_day(db, fleet, day, day, aggregate)[day]


def active_users_by_day(
    db: Session, fleet: FleetConfig, first: date, last: date, aggregate: people_once.Aggregate
) -> dict[date, dict[str, people_once.ActiveUsers]]:
    """`active_users` for each day from `first` to `last`: as counted after the last
    collection for the days it counted, counted here from the people kept for any other
    (a day since, or the fleet config's hubs placed otherwise since)."""
    placement = fleet.placement()
    names = people_once.groups(placement, aggregate)
    nobody = people_once.ActiveUsers(0, 0, 0)
    reach = timedelta(days=max(people_once.WINDOW_DAYS.values()) - 1)
    series: dict[date, dict[str, people_once.ActiveUsers]] = {}
    span = fleet_store.counted_days(db, placement)
    low, high = span if span else (1, 0)
    low, high = max(low, day_number(first)), min(high, day_number(last))
    if low <= high:
        for number, found in fleet_store.counts(db, aggregate, low, high).items():
            series[fleet_store.day_of(number)] = {name: found.get(name, nobody) for name in names}
    missing = sorted(set(_days(first, last)) - set(series))
    # the days not counted: before and after those counted, each a run of days
    for run in _runs(missing):
        activity = fleet_store.activity(db, placement, run[0] - reach, run[-1])
        series |= people_once.active_users_by_day(activity, placement, run[0], run[-1], aggregate)
    return dict(sorted(series.items()))


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _runs(days: list[date]) -> list[list[date]]:
    """Sorted days as runs of consecutive days."""
    runs: list[list[date]] = []
    for day in days:
        if runs and runs[-1][-1] + timedelta(days=1) == day:
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs


def month_of(month: str) -> tuple[date, date]:
    """The first and last day of YYYY-MM; ValueError if it is not a month."""
    if not re.fullmatch(r"\d{4}-\d{2}", month):
        raise ValueError(f"{month[:20]!r} is not a month like 2026-11")
    first = date(int(month[:4]), int(month[5:7]), 1)
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first, following - timedelta(days=1)


def cluster_bills(fleet: FleetConfig, base: Path, month: str) -> dict[str, Decimal | None]:
    """Each cluster's cost for `month`: its fixed `monthly_cost`, or the lines of its bill
    files (relative to `base`, the fleet file's folder) dated in the month; None when it
    has neither."""
    first, last = (day_number(d) for d in month_of(month))
    bills: dict[str, Decimal | None] = {}
    for cluster in fleet.clusters:
        if cluster.monthly_cost is not None:
            bills[cluster.name] = cluster.monthly_cost
            continue
        total, found = 0.0, False
        for pattern in cluster.bills:
            for name in sorted(glob.glob(str(base / pattern))):
                with open(name, "rb") as file:
                    _, lines = read_bill(file, fleet.fleet.currency)
                for (day, _service), cost in lines.items():
                    if first <= day <= last:
                        total, found = total + cost, True
        bills[cluster.name] = to_cents(repr(total)) if found else None
    return bills


def money(db: Session, fleet: FleetConfig, base: Path, month: str) -> FleetMonth:
    """The month's money: every community's attributed and shared cost, fee and recovery."""
    hubs = fleet_store.hub_months(db, month)
    known = fleet.placement()
    hubs = {hub: figures for hub, figures in hubs.items() if hub in known}  # a hub no longer listed
    return month_money(known, fleet.sharing(), fleet.fees(), cluster_bills(fleet, base, month), hubs)


class Spent(NamedTuple):
    community: str
    attributed_cost: Decimal
    budget: Decimal

    @property
    def over(self) -> bool:
        return self.attributed_cost > self.budget


def budgets(db: Session, fleet: FleetConfig, base: Path, month: str) -> list[Spent]:
    """What each community with a `budget` was attributed in `month` (so far), by name."""
    limits = fleet.budgets()
    if not limits:
        return []
    communities = money(db, fleet, base, month).communities
    zero = Decimal("0.00")
    return [
        Spent(name, communities[name].attributed_cost if name in communities else zero, limit)
        for name, limit in sorted(limits.items())
    ]


MAX_MONTHS = 24  # a cost window's months: each a money() of every hub
COST_AGGREGATES = ("community", "hub", "cluster")
NOT_WHOLE_MONTHS = (
    "the fleet keeps each hub's cost by month: give a window of whole months (UTC), "
    "like lastmonth, month (this month so far) or 2026-09-01T00:00:00Z,2026-12-01T00:00:00Z"
)


def whole_months(start_ms: int, end_ms: int, now_ms: int) -> list[str]:
    """The months (YYYY-MM) of a window that starts on a month's first instant and ends on
    one, or at now or later (this month so far); ValueError in words otherwise."""
    start, end, now = (datetime.fromtimestamp(ms / 1000, UTC) for ms in (start_ms, end_ms, now_ms))

    def first_instant(moment: datetime) -> bool:
        return moment == moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)

    if not first_instant(start) or not (first_instant(end) or end >= now):
        raise ValueError(NOT_WHOLE_MONTHS)
    last = min(end, now) - timedelta(microseconds=1)
    months = [] if last < start else months_of(start.date(), last.date())
    if len(months) > MAX_MONTHS:
        raise ValueError(f"a window of at most {MAX_MONTHS} months ({len(months)} asked)")
    return months


def months_of(first: date, last: date) -> list[str]:
    """Every month from `first`'s to `last`'s, in order."""
    months, year, month = [], first.year, first.month
    while (year, month) <= (last.year, last.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def cost(db: Session, fleet: FleetConfig, base: Path, months: list[str], aggregate: str) -> list[CostRow]:
    """The cost of the `months` added up by community (its attributed and shared cost,
    fee and recovery), hub (its attributed cost) or cluster (its bill and how it was
    taken), each with the fleet's total last; every one of the fleet's names, with
    zeros for a month it had no figures."""
    totals: dict[str, CostRow] = {}
    if aggregate == "community":
        names = [c.name for c in fleet.communities]
    elif aggregate == "hub":
        names = [h.name for h in fleet.hubs]
    else:
        names = [c.name for c in fleet.clusters]
    for name in [*names, FLEET]:
        totals[name] = CostRow(name)
    for month in months:
        figures = money(db, fleet, base, month)
        if aggregate == "community":
            parts = {**figures.communities, FLEET: figures.total}
            for name, part in parts.items():
                totals[name].add(attributed=part.attributed_cost, shared=part.shared_cost, cost=part.cost, fee=part.fee)
        elif aggregate == "hub":
            for name, attributed in figures.hubs.items():
                totals[name].add(attributed=attributed, cost=attributed)
            attributed = sum(figures.hubs.values(), Decimal(0))
            totals[FLEET].add(attributed=attributed, cost=attributed)
        else:
            for name, cluster in figures.clusters.items():
                totals[name].add(
                    attributed=cluster.attributed_cost, shared=cluster.shared_cost, cost=cluster.cost,
                    unallocated=cluster.unallocated, bill=cluster.bill,
                )  # fmt: skip
            total = figures.total
            bills = [c.bill for c in figures.clusters.values() if c.bill is not None]
            totals[FLEET].add(
                attributed=total.attributed_cost, shared=total.shared_cost, cost=total.cost,
                unallocated=figures.unallocated, bill=sum(bills, Decimal("0.00")) if bills else None,
            )  # fmt: skip
    return list(totals.values())


FLEET = people_once.FLEET


@dataclass
class CostRow:
    """A community's, hub's, cluster's or the fleet's money over some months."""

    name: str
    attributed_cost: Decimal = Decimal("0.00")
    shared_cost: Decimal = Decimal("0.00")
    cost: Decimal = Decimal("0.00")
    fee: Decimal = Decimal("0.00")
    unallocated: Decimal = Decimal("0.00")
    bill: Decimal | None = None  # a cluster's bills (None: none imported those months)

    def add(self, *, attributed, cost, shared=Decimal(0), fee=Decimal(0), unallocated=Decimal(0), bill=None) -> None:
        self.attributed_cost += attributed
        self.shared_cost += shared
        self.cost += cost
        self.fee += fee
        self.unallocated += unallocated
        if bill is not None:
            self.bill = (self.bill or Decimal("0.00")) + bill

    @property
    def recovery(self) -> Decimal | None:
        return recovery(self.fee, self.cost)


@dataclass
class HubState:
    hub: str
    collected_ms: int | None
    error: str | None
    stale: bool


def hub_states(db: Session, fleet: FleetConfig, now_ms: int) -> list[HubState]:
    """Every hub of the fleet with when it last answered in full, and whether its figures
    are stale (never collected, its last collection failed, or none for STALE_AFTER_MS)."""
    rows = {row.name: row for row in db.scalars(select(CollectedHub))}
    states = []
    for hub in fleet.hubs:
        row = rows.get(hub.name)
        collected = row.collected_ms if row else None
        error = row.error if row else None
        stale = hub.url is not None and (collected is None or error is not None or now_ms - collected > STALE_AFTER_MS)
        states.append(HubState(hub.name, collected, error, stale))
    return states
