"""The cost service's pages: your own costs and budgets, and the community's for its admins
(cost by user, group or profile; spending over time; budgets; the ledger and top-ups)."""

from __future__ import annotations

from tornado import web

from ...accounting import budgets
from ...accounting.cost_reports import cost_allocation
from ...accounting.figures import total_of
from ...accounting.models import LedgerEntry
from ...accounting.opencost import AGGREGATES, iso
from ...accounting.rollups import NO_GROUP
from ..framework import PageHandler
from ..framework.charts import chart_series
from .budgethandlers import budget_line, entry_json, ledger_entry
from .metrics import now_ms

SHARED_SECONDS = 10
CHART_NAMES = 8
# the figures of the cost tables' total rows
TOTALLED = ("server_hours", "gpu_hours", "cpu_cost", "ram_cost", "gpu_cost", "total_cost")


class UserPage(PageHandler):
    @web.authenticated
    async def get(self) -> None:
        user = self.current_user
        window, start, end = self.period()
        name, step, now, service = user["name"], self.step(window), now_ms(), self.service

        def figures(db):
            return (
                cost_allocation(db, service.basis, *window, "profile", now, username=name),
                cost_allocation(db, service.basis, *window, "profile", now, step=step, username=name),
                service.check(db, name, user.get("groups", []), None, now) if service.budgets else None,
            )

        totals, daily, state = await self.run_db(figures)
        self.render_page(
            "cost/user.html",
            totals=totals,
            total=total_of(totals, TOTALLED),
            start=start,
            end=end,
            window=f"{iso(window.start_ms)},{iso(window.end_ms)}",
            chart=chart_series(daily, "total_cost", window, step),
            currency=service.currency,
            state=state,
            is_admin=self.may_read_all(user),
            led_groups=[] if self.may_read_all(user) else sorted(self.led_groups(user)),
        )


class AdminPage(PageHandler):
    def check_admin(self) -> dict:
        user = self.current_user
        if not self.may_read_all(user):
            raise web.HTTPError(403, "This page is for hub admins and the community admins.")
        return user

    @web.authenticated
    async def get(self) -> None:
        self.check_admin()
        window, start, end = self.period()
        aggregate = self.param_choice("aggregate", AGGREGATES, "user")
        step, now, service = self.step(window), now_ms(), self.service

        def figures(db):
            totals = cost_allocation(db, service.basis, *window, aggregate, now)
            # by group a person in several groups is in each of their rows (their hours
            # always, their cost by the "each" rule): the total is everyone's, read by user
            everyone = cost_allocation(db, service.basis, *window, "user", now) if aggregate == "group" else totals
            series = cost_allocation(db, service.basis, *window, aggregate, now, step=step)
            statuses = [
                budgets.status(db, service.basis, budget, subject, group, now)
                for budget, subject, group in service.alerter.subjects()
            ]
            over_time = []
            for s in statuses:
                chart = budgets.spending_over_time(db, service.basis, s, now)
                chart["caption"] = budgets.spending_caption(s, now, service.currency)
                over_time.append(chart)
            return totals, total_of(everyone, TOTALLED), series, statuses, over_time

        def recent_ledger(db):  # not shared: a top-up shows at once
            return [entry_json(e) for e in db.query(LedgerEntry).order_by(LedgerEntry.at_ms.desc()).limit(100)]

        # every admin sees the same figures: a burst of the same page is computed once
        totals, total, series, statuses, over_time = await self.service.shared_report(
            ("cost-admin", window, aggregate), lambda: self.run_db(figures), ttl=SHARED_SECONDS
        )
        ledger = await self.run_db(recent_ledger)
        for row in totals:
            if aggregate == "group" and row["name"] == NO_GROUP:
                row["name"] = "(no group)"
        self.render_page(
            "cost/admin.html",
            totals=totals,
            total=total,
            aggregate=aggregate,
            start=start,
            end=end,
            window=f"{iso(window.start_ms)},{iso(window.end_ms)}",
            chart=chart_series(series, "total_cost", window, step, top=CHART_NAMES),
            currency=service.currency,
            group_rule=service.basis.group_rule,
            statuses=[budget_line(s, service.currency) for s in statuses],
            over_time=over_time,
            budget_names=[b.name for b in service.budgets],
            ledger=ledger,
            is_admin=True,
        )


class LedgerForm(AdminPage):
    """The admin page's top-up form (XSRF-checked, as every page form): adds to the
    ledger, then back to the page."""

    @web.authenticated
    async def post(self) -> None:
        user = self.check_admin()
        entry = ledger_entry(self, user)

        def work(db):
            db.add(entry)
            db.commit()

        await self.run_db(work)
        self.redirect(f"{self.service.prefix}admin")
