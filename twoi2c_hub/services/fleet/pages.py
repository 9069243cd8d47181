"""The fleet service's pages, for the operator groups and hub admins only: the overview
(the two headline numbers with their trend, communities, hubs by size, hubs), a
community's page, a hub's page, and every community's statement for a month to print."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tornado import web

from ...accounting import fleet as people_once
from ..framework import PageHandler
from . import report
from .handlers import FleetHandler, hub_rows, last_month, last_months, statements


class OverviewPage(FleetHandler, PageHandler):
    """The two headline numbers with their trend, each community's, each hub's."""

    @web.authenticated
    async def get(self) -> None:
        self.operator()
        service = self.service
        today = datetime.now(UTC).date()
        day = today - timedelta(days=1)  # the last whole day
        month = self.month_param(last_month(today))
        first = report.month_of(month)[0]
        before = f"{first - timedelta(days=1):%Y-%m}"
        now = int(datetime.now(UTC).timestamp() * 1000)

        def work(db):
            people = report.active_users(db, service.fleet, day, "community")
            fleet_now = report.active_users(db, service.fleet, day, "fleet")
            fleet_before = report.active_users(db, service.fleet, day - timedelta(days=7), "fleet")
            hubs = report.active_users(db, service.fleet, day, "hub")
            money = report.money(db, service.fleet, service.fleet_folder, month)
            money_before = report.money(db, service.fleet, service.fleet_folder, before)
            spent = report.budgets(db, service.fleet, service.fleet_folder, f"{today:%Y-%m}")
            return people, fleet_now, fleet_before, hubs, money, money_before, hub_rows(service, db, now), spent

        people, fleet_now, fleet_before, hubs, money, money_before, states, spent = await self.run_db(work)
        weekly = fleet_now.get(people_once.FLEET, people_once.ActiveUsers(0, 0, 0)).weekly
        weekly_before = fleet_before.get(people_once.FLEET, people_once.ActiveUsers(0, 0, 0)).weekly
        names = {c.name: c.display_name or c.name for c in service.fleet.communities}
        self.render_page(
            "fleet/overview.html",
            fleet_name=service.fleet.fleet.name,
            currency=service.fleet.fleet.currency,
            day=day.isoformat(),
            month=month,
            month_before=before,
            weekly=weekly,
            weekly_change=weekly - weekly_before,
            recovery=money.total.recovery,
            recovery_before=money_before.total.recovery,
            communities=[
                {
                    "slug": name,
                    "name": names.get(name, name),
                    "people": people.get(name, people_once.ActiveUsers(0, 0, 0)),
                    "money": money.communities.get(name),
                }
                for name in sorted(set(people) | set(money.communities))
            ],
            total=money.total,
            this_month=f"{today:%Y-%m}",
            over_budget=[
                {"name": names.get(s.community, s.community), "spent": s.attributed_cost, "budget": s.budget}
                for s in spent
                if s.over
            ],
            hubs=[{**row, "people": hubs.get(row["name"], people_once.ActiveUsers(0, 0, 0))} for row in states],
            sizes={
                size: names
                for size, names in people_once.hubs_by_size({hub: c.monthly for hub, c in hubs.items()}).items()
                if names
            },
            is_admin=True,
        )


class StatementsPage(FleetHandler, PageHandler):
    @web.authenticated
    async def get(self) -> None:
        self.operator()
        month = self.month_param(last_month(datetime.now(UTC).date()))
        rows = await self.run_db(lambda db: statements(self.service, db, month))
        self.render_page(
            "fleet/statements.html",
            fleet_name=self.service.fleet.fleet.name,
            month=month,
            statements=rows,
            is_admin=True,
        )


def week_by_week(db, fleet, day, aggregate: str, name: str) -> list[dict]:
    """A community's or hub's people in the 7 and 30 days to `day` and to each of the
    CommunityPage.WEEKS - 1 weeks before, latest first."""
    weeks = []
    for back in range(CommunityPage.WEEKS):
        on = day - timedelta(days=7 * back)
        counts = report.active_users(db, fleet, on, aggregate).get(name)
        weeks.append({"day": on.isoformat(), "people": counts or people_once.ActiveUsers(0, 0, 0)})
    return weeks


class CommunityPage(FleetHandler, PageHandler):
    """One community: its people week by week (each once across its hubs), its money month
    by month, its hubs."""

    WEEKS = 8
    MONTHS = 6

    @web.authenticated
    async def get(self, name: str) -> None:
        self.operator()
        service = self.service
        community = next((c for c in service.fleet.communities if c.name == name), None)
        if community is None:
            raise web.HTTPError(404, "There is no such community in the fleet.")
        today = datetime.now(UTC).date()
        day = today - timedelta(days=1)
        now = int(datetime.now(UTC).timestamp() * 1000)
        months = last_months(today, self.MONTHS)

        def work(db):
            weeks = week_by_week(db, service.fleet, day, "community", name)
            money = []
            for month in months:
                figures = report.money(db, service.fleet, service.fleet_folder, month)
                money.append({"month": month, "money": figures.communities.get(name)})
            hubs = [row for row in hub_rows(service, db, now) if row["community"] == name]
            return weeks, money, hubs

        weeks, money, hubs = await self.run_db(work)
        self.render_page(
            "fleet/community.html",
            fleet_name=service.fleet.fleet.name,
            currency=service.fleet.fleet.currency,
            community=community.display_name or community.name,
            fee=community.fee,
            weeks=weeks,
            months=money,
            hubs=hubs,
            is_admin=True,
        )


class HubPage(FleetHandler, PageHandler):
    """One hub: where it runs and how its figures were collected, its people week by week,
    the cost it was attributed month by month."""

    @web.authenticated
    async def get(self, name: str) -> None:
        self.operator()
        service = self.service
        hub = next((h for h in service.fleet.hubs if h.name == name), None)
        if hub is None:
            raise web.HTTPError(404, "There is no such hub in the fleet.")
        today = datetime.now(UTC).date()
        day = today - timedelta(days=1)
        now = int(datetime.now(UTC).timestamp() * 1000)
        months = last_months(today, CommunityPage.MONTHS)

        def work(db):
            weeks = week_by_week(db, service.fleet, day, "hub", name)
            money = [
                {
                    "month": month,
                    "attributed": report.money(db, service.fleet, service.fleet_folder, month).hubs.get(name),
                }
                for month in months
            ]
            (state,) = [row for row in hub_rows(service, db, now) if row["name"] == name]
            return weeks, money, state

        weeks, money, state = await self.run_db(work)
        community = next(c for c in service.fleet.communities if c.name == hub.community)
        self.render_page(
            "fleet/hub.html",
            fleet_name=service.fleet.fleet.name,
            currency=service.fleet.fleet.currency,
            hub=hub,
            community=community.display_name or community.name,
            weeks=weeks,
            months=money,
            state=state,
            is_admin=True,
        )
