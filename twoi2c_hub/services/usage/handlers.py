"""The usage service's pages: your own usage, and the community's for its admins."""

from __future__ import annotations

from sqlalchemy.orm import Session as DB
from tornado import web

from ...accounting import activity, reports, sizing
from ...accounting.figures import FIGURES, HOURS, total_of
from ...accounting.models import DAY_MS
from ...accounting.opencost import AGGREGATES, iso
from ...accounting.reports import NameFilter
from ...accounting.rollups import NO_GROUP
from ..framework import PageHandler
from ..framework.charts import chart_series
from .intake import now_ms

# how long the community's figures, once computed, answer the same request again
SHARED_SECONDS = 10
# names charted one by one; the rest are one "others" series
CHART_NAMES = 8
# what the pages can chart and sort by
METRICS = HOURS


class UserPage(PageHandler):
    @web.authenticated
    async def get(self) -> None:
        user = self.current_user
        window, start, end = self.period()
        name, step, now = user["name"], self.step(window), now_ms()
        metric = self.param_choice("metric", METRICS, "server_hours")

        def figures(db: DB) -> tuple:
            return (
                reports.allocation(db, *window, "profile", now, username=name),
                reports.allocation(db, *window, "profile", now, step=step, username=name),
                activity.sessions(db, start_ms=window.start_ms, end_ms=window.end_ms, username=name, limit=1000),
            )

        totals, daily, recent = await self.run_db(figures)
        self.render_page(
            "usage/user.html",
            totals=totals,
            total=total_of(totals, FIGURES),
            recent=list(reversed(recent))[:50],
            start=start,
            end=end,
            chart=chart_series(daily, metric, window, step),
            metric=metric,
            metrics=METRICS,
            is_admin=self.may_read_all(user),
        )


class AdminPage(PageHandler):
    @web.authenticated
    async def get(self) -> None:
        user = self.current_user
        if not self.may_read_all(user):
            raise web.HTTPError(403, "This page is for hub admins and the community admins.")
        window, start, end = self.period()
        aggregate = self.param_choice("aggregate", AGGREGATES, "user")
        drill = self.param_text("user")
        metric = self.param_choice("metric", METRICS, "server_hours")
        step, now = self.step(window), now_ms()

        def figures(db: DB) -> tuple:
            totals = reports.allocation(db, *window, aggregate, now)
            totals.sort(key=lambda row: (-row[metric], row["name"]))  # who used the most first
            # the chart: the CHART_NAMES largest, and everyone else as one series
            leaders = frozenset(row["name"] for row in totals[:CHART_NAMES])
            for row in totals:
                if aggregate == "group" and row["name"] == NO_GROUP:
                    row["name"] = "(no group)"
            series = reports.allocation(db, *window, aggregate, now, step=step, names=NameFilter(leaders))
            series += reports.allocation(
                db, *window, aggregate, now, step=step, names=NameFilter(leaders, keep=False, collapse_to="(others)")
            )
            # by group a person in several groups is in each of their rows: the total is
            # everyone's, each session once, read by user
            everyone = reports.allocation(db, *window, "user", now) if aggregate == "group" else totals
            return (
                totals,
                total_of(everyone, FIGURES),
                series,
                activity.active_users(db, max(window.start_ms, window.end_ms - 400 * DAY_MS), window.end_ms, now),
                activity.sessions(db, start_ms=window.start_ms, end_ms=window.end_ms, username=drill, limit=1000)
                if drill
                else None,
            )

        # every admin sees the same figures: a burst of the same page is computed once
        totals, total, series, active, drill_sessions = await self.service.shared_report(
            ("admin", window, aggregate, drill, metric), lambda: self.run_db(figures), ttl=SHARED_SECONDS
        )
        # what the period's measured servers used, and where a smaller choice would have done
        price, currency = self.service.memory_price(window.end_ms)
        advice = await self.service.shared_report(
            ("right-sizing", window),
            lambda: self.run_db(lambda db: sizing.right_sizing(db, *window, price, currency)),
            ttl=SHARED_SECONDS,
        )
        self.render_page(
            "usage/admin.html",
            totals=totals,
            total=total,
            aggregate=aggregate,
            start=start,
            end=end,
            chart=chart_series(series, metric, window, step, top=CHART_NAMES + 1),
            metric=metric,
            metrics=METRICS,
            active=active,
            drill=drill,
            drill_sessions=drill_sessions,
            window=f"{iso(window.start_ms)},{iso(window.end_ms)}",
            figures=FIGURES,
            advice=advice,
            is_admin=True,
        )
