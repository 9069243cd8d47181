"""The fleet service's API (`api/v1/`, JSON or `format=csv`), for the operator groups and
hub admins only, and what its pages (`pages.py`) share with it:

- `active-users?window=&aggregate=hub|cluster|community|fleet`: daily, weekly and monthly
  active users for each day of the window (at most 400 days), each person once per group;
- `recovery?month=YYYY-MM`: each community's attributed and shared cost, fee and
  recovery, and the fleet's;
- `cost?window=&aggregate=community|hub|cluster`: the cost of a window of whole months
  (lastmonth, month: this month so far, or START,END on the 1st of months), added up:
  each community's attributed and shared cost, fee and recovery; each hub's attributed
  cost; each cluster's bill, what its hubs were attributed and its shared cost; the fleet's
  total last (named `fleet`);
- `hubs`: each hub's collection: when its figures are from, its last error, stale or not;
- `statements?month=YYYY-MM`: every community's statement for the month in one batch (its
  hubs' attributed cost, its share of the clusters' shared cost, its fee); the page
  `statements?month=` prints them, one community a page.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from tornado import web

from ...accounting import fleet as people_once
from ...accounting.fleet_money import CommunityMonth
from ...accounting.fleet_store import day_of
from ...accounting.models import DAY_MS
from ...accounting.reports import iso
from ..framework import APIHandler, BadParameter
from ..framework import params as parse
from . import report

NOT_YOURS = "The fleet's figures are for the operator's groups and the hub's admins."
MONEY_COLUMNS = ["name", "attributedCost", "sharedCost", "cost", "fee", "recovery"]


class FleetHandler:
    """What every page and API call checks first: an operator is asking."""

    def operator(self) -> dict:
        user = self.current_user
        if user is None or not self.may_read_all(user):
            raise web.HTTPError(403, NOT_YOURS)
        return user

    def month_param(self, default: str) -> str:
        month = self.get_argument("month", None) or default
        try:
            report.month_of(month)
        except ValueError as e:
            raise BadParameter("month", str(e)) from None
        return month


def money_row(name: str, m: CommunityMonth) -> dict:
    return {
        "name": name,
        "attributedCost": float(m.attributed_cost),
        "sharedCost": float(m.shared_cost),
        "cost": float(m.cost),
        "fee": float(m.fee),
        "recovery": None if m.recovery is None else float(m.recovery),
    }


def last_months(today: date, count: int) -> list[str]:
    """This month and the `count - 1` before it, latest first (YYYY-MM)."""
    months, first = [], today.replace(day=1)
    for _ in range(count):
        months.append(f"{first:%Y-%m}")
        first = (first - timedelta(days=1)).replace(day=1)
    return months


def last_month(today: date) -> str:
    return f"{today.replace(day=1) - timedelta(days=1):%Y-%m}"


class ActiveUsersAPI(FleetHandler, APIHandler):
    async def get(self) -> None:
        self.operator()
        window = parse.window("window", self.get_argument("window", None), datetime.now(UTC), "7d", max_days=400)
        aggregate = self.param_choice("aggregate", people_once.AGGREGATES, "fleet")
        service = self.service
        first, last = day_of(window.start_ms // DAY_MS), day_of((window.end_ms - 1) // DAY_MS)

        def work(db):
            series = report.active_users_by_day(db, service.fleet, first, last, aggregate)
            return [
                {"date": on.isoformat(), "name": name, **counts._asdict()}
                for on, by_name in series.items()
                for name, counts in by_name.items()
            ]

        rows = await self.run_db(work)
        columns = ["date", "name", "daily", "weekly", "monthly"]
        self.respond(rows, columns=columns, filename=f"active-users-by-{aggregate}")


class RecoveryAPI(FleetHandler, APIHandler):
    async def get(self) -> None:
        self.operator()
        month = self.month_param(last_month(datetime.now(UTC).date()))
        service = self.service
        money = await self.run_db(lambda db: report.money(db, service.fleet, service.fleet_folder, month))
        rows = [money_row(name, m) for name, m in money.communities.items()] + [money_row("fleet", money.total)]
        self.respond(
            rows,
            columns=MONEY_COLUMNS,
            filename=f"recovery-{month}",
            month=month,
            currency=service.fleet.fleet.currency,
            unallocated=float(money.unallocated),
        )


def amount(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


COST_COLUMNS = {
    "community": MONEY_COLUMNS,
    "hub": ["name", "community", "cluster", "attributedCost"],
    "cluster": ["name", "bill", "attributedCost", "sharedCost", "unallocated", "cost"],
}


class CostAPI(FleetHandler, APIHandler):
    """The cost of a window of whole months by community, hub or cluster, the fleet's last."""

    async def get(self) -> None:
        self.operator()
        now = datetime.now(UTC)
        window = parse.window("window", self.get_argument("window", None), now, "lastmonth")
        aggregate = self.param_choice("aggregate", report.COST_AGGREGATES, "community")
        try:
            months = report.whole_months(window.start_ms, window.end_ms, int(now.timestamp() * 1000))
        except ValueError as e:
            raise BadParameter("window", str(e)) from None
        service = self.service
        totals = await self.run_db(lambda db: report.cost(db, service.fleet, service.fleet_folder, months, aggregate))
        placement = service.fleet.placement()
        rows = []
        for row in totals:
            figures = {
                "name": row.name,
                "attributedCost": float(row.attributed_cost),
                "sharedCost": float(row.shared_cost),
                "cost": float(row.cost),
                "fee": float(row.fee),
                "recovery": amount(row.recovery),
                "unallocated": float(row.unallocated),
                "bill": amount(row.bill),
            }
            if aggregate == "hub":
                cluster, community = placement.get(row.name, (None, None))
                figures |= {"community": community, "cluster": cluster}
            rows.append({k: figures[k] for k in COST_COLUMNS[aggregate]})
        self.respond(
            rows,
            columns=COST_COLUMNS[aggregate],
            filename=f"cost-by-{aggregate}",
            window={"start": iso(window.start_ms), "end": iso(min(window.end_ms, int(now.timestamp() * 1000)))},
            months=months,
            currency=service.fleet.fleet.currency,
        )


def hub_rows(service, db, now_ms: int) -> list[dict]:
    placement = service.fleet.placement()
    return [
        {
            "name": s.hub,
            "community": placement[s.hub][1],
            "cluster": placement[s.hub][0],
            "collected": iso(s.collected_ms),
            "error": s.error,
            "stale": s.stale,
        }
        for s in report.hub_states(db, service.fleet, now_ms)
    ]


HUB_COLUMNS = ["name", "community", "cluster", "collected", "error", "stale", "monthlyActiveUsers", "sizeBin"]


class HubsAPI(FleetHandler, APIHandler):
    """Each hub's collection, and its size: its people in the 30 days to yesterday and the
    bin operators chart hubs by (`accounting.fleet.size_bin`)."""

    async def get(self) -> None:
        self.operator()
        now = int(datetime.now(UTC).timestamp() * 1000)
        yesterday = datetime.now(UTC).date() - timedelta(days=1)
        service = self.service

        def work(db):
            people = report.active_users(db, service.fleet, yesterday, "hub")
            rows = hub_rows(service, db, now)
            for row in rows:
                monthly = people[row["name"]].monthly
                row |= {"monthlyActiveUsers": monthly, "sizeBin": people_once.size_bin(monthly)}
            return rows

        rows = await self.run_db(work)
        self.respond(rows, columns=HUB_COLUMNS, filename="hubs", day=yesterday.isoformat())


# a community with no figures that month (no hub of it present, no share of a bill)
NOTHING_OWED = CommunityMonth(Decimal(0), Decimal(0), Decimal(0), Decimal(0), None)
STATEMENT_COLUMNS = ["community", "name", "month", "currency", "hubs", *MONEY_COLUMNS[1:]]


def statements(service, db, month: str) -> list[dict]:
    """Every community's statement for `month`: its hubs' attributed costs, its share of the
    shared cost, its cost, fee and recovery (communities with no figures that month too)."""
    money = report.money(db, service.fleet, service.fleet_folder, month)
    placement = service.fleet.placement()
    rows = []
    for community in service.fleet.communities:
        figures = money.communities.get(community.name)
        hubs = [
            {"name": hub, "cluster": placement[hub][0], "attributedCost": float(cost)}
            for hub, cost in money.hubs.items()
            if placement[hub][1] == community.name
        ]
        owed = money_row(community.name, figures or NOTHING_OWED)
        rows.append(
            {
                **owed,
                "community": community.name,
                "name": community.display_name or community.name,
                "month": month,
                "currency": service.fleet.fleet.currency,
                "hubs": hubs,
            }
        )
    return rows


class StatementsAPI(FleetHandler, APIHandler):
    async def get(self) -> None:
        self.operator()
        month = self.month_param(last_month(datetime.now(UTC).date()))
        rows = await self.run_db(lambda db: statements(self.service, db, month))
        flat = [{**row, "hubs": " ".join(h["name"] for h in row["hubs"])} for row in rows]
        self.respond(rows, csv_rows=flat, columns=STATEMENT_COLUMNS, filename=f"statements-{month}")
