"""The fleet's figures from what was collected: active users counted once (per hub,
cluster, community and fleet-wide), each community's money for a month, and the hubs
whose figures are stale. `twoi2c-hub fleet report` prints them; the fleet's pages and API
read the same functions.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from ...accounting import fleet as people_once
from ...accounting import fleet_store
from ...accounting.bills import read_bill
from ...accounting.fleet_money import FleetMonth, month_money, to_cents
from ...accounting.fleet_store import CollectedHub, day_number
from ...config.fleet import FleetConfig

# a hub not collected for this long has stale figures (a collection runs hourly or daily)
STALE_AFTER_MS = 26 * 3600 * 1000


def active_users(
    store: sessionmaker, fleet: FleetConfig, day: date, aggregate: people_once.Aggregate
) -> dict[str, people_once.ActiveUsers]:
    """Daily, weekly and monthly active users on `day` of every hub, cluster, community or
    the fleet, each person once per group."""
    placement = fleet.placement()
    first = day - timedelta(days=max(people_once.WINDOW_DAYS.values()) - 1)
    with store() as db:
        activity = fleet_store.activity(db, placement, first, day)
    return people_once.active_users(activity, placement, day, aggregate)


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


def money(store: sessionmaker, fleet: FleetConfig, base: Path, month: str) -> FleetMonth:
    """The month's money: every community's attributed and shared cost, fee and recovery."""
    with store() as db:
        hubs = fleet_store.hub_months(db, month)
    known = fleet.placement()
    hubs = {hub: figures for hub, figures in hubs.items() if hub in known}  # a hub no longer listed
    return month_money(known, fleet.sharing(), fleet.fees(), cluster_bills(fleet, base, month), hubs)


@dataclass
class HubState:
    hub: str
    collected_ms: int | None
    error: str | None
    stale: bool


def hub_states(store: sessionmaker, fleet: FleetConfig, now_ms: int) -> list[HubState]:
    """Every hub of the fleet with when it last answered in full, and whether its figures
    are stale (never collected, its last collection failed, or none for STALE_AFTER_MS)."""
    with store() as db:
        rows = {row.name: row for row in db.scalars(select(CollectedHub))}
    states = []
    for hub in fleet.hubs:
        row = rows.get(hub.name)
        collected = row.collected_ms if row else None
        error = row.error if row else None
        stale = hub.url is not None and (collected is None or error is not None or now_ms - collected > STALE_AFTER_MS)
        states.append(HubState(hub.name, collected, error, stale))
    return states
