"""The usage service's pages: your own usage, and the community's for its admins."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from sqlalchemy.orm import Session as DB
from tornado import web

from ...accounting import activity, reports, windows
from ...accounting.models import DAY_MS
from ...accounting.reports import NameFilter
from ...accounting.rollups import FIGURES, NO_GROUP
from ..framework import BadParameter, PageHandler
from ..framework import params as parse
from .intake import now_ms

# how long the community's figures, once computed, answer the same request again
SHARED_SECONDS = 10
# names charted one by one; the rest are one "others" series
CHART_NAMES = 8


def chart_series(rows: list[dict], figure: str, top: int = 8) -> dict:
    """Per-step series of `figure` for the `top` names with most usage, the rest as 'others'."""
    totals: dict[str, float] = {}
    for row in rows:
        totals[row["name"]] = totals.get(row["name"], 0) + row[figure]
    leaders = sorted(totals, key=lambda n: -totals[n])[:top]
    steps = sorted({row["window"]["start"] for row in rows})
    series = {name: dict.fromkeys(steps, 0.0) for name in leaders}
    others = dict.fromkeys(steps, 0.0)
    for row in rows:
        target = series[row["name"]] if row["name"] in series else others
        target[row["window"]["start"]] += row[figure]
    if any(others.values()):
        series["others"] = others
    return {
        "x": steps,
        "series": [{"name": n, "y": [round(v, 4) for v in values.values()]} for n, values in series.items()],
    }


class UsagePage(PageHandler):
    def period(self, default_days: int = 30) -> tuple[windows.Window, str, str]:
        """The days asked for (`start`, `end`: dates, both included), as a window and as
        the dates to show in the form; the last `default_days` days by default."""
        start_day = parse.day("start", self.get_argument("start", None))
        end_day = parse.day("end", self.get_argument("end", None))
        today = datetime.now(UTC).date()
        if start_day is None and end_day is None:
            end_day = today
            start_day = end_day - timedelta(days=default_days - 1)
        elif start_day is None or end_day is None:
            raise BadParameter("start" if start_day is None else "end", "give both dates, or neither")
        try:
            window = windows.checked(
                datetime.combine(start_day, time(), UTC),
                datetime.combine(end_day + timedelta(days=1), time(), UTC),
            )
        except ValueError as e:
            raise BadParameter("start/end", str(e)) from None
        return window, start_day.isoformat(), end_day.isoformat()

    @staticmethod
    def step(window: windows.Window) -> str:
        return parse.auto_step(window)


class UserPage(UsagePage):
    @web.authenticated
    async def get(self) -> None:
        user = self.current_user
        window, start, end = self.period()
        name, step, now = user["name"], self.step(window), now_ms()

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
            recent=list(reversed(recent))[:50],
            start=start,
            end=end,
            chart=chart_series(daily, "server_hours"),
            is_admin=self.may_read_all(user),
        )


class AdminPage(UsagePage):
    @web.authenticated
    async def get(self) -> None:
        user = self.current_user
        if not self.may_read_all(user):
            raise web.HTTPError(403, "This page is for hub admins and the community admins.")
        window, start, end = self.period()
        aggregate = self.param_choice("aggregate", reports.AGGREGATES, "user")
        drill = self.param_text("user")
        step, now = self.step(window), now_ms()

        def figures(db: DB) -> tuple:
            totals = reports.allocation(db, *window, aggregate, now)
            # the chart: the CHART_NAMES largest, and everyone else as one series
            leaders = frozenset(row["name"] for row in totals[:CHART_NAMES])
            for row in totals:
                if aggregate == "group" and row["name"] == NO_GROUP:
                    row["name"] = "(no group)"
            series = reports.allocation(db, *window, aggregate, now, step=step, names=NameFilter(leaders))
            series += reports.allocation(
                db, *window, aggregate, now, step=step, names=NameFilter(leaders, keep=False, collapse_to="(others)")
            )
            return (
                totals,
                series,
                activity.active_users(db, max(window.start_ms, window.end_ms - 400 * DAY_MS), window.end_ms, now),
                activity.sessions(db, start_ms=window.start_ms, end_ms=window.end_ms, username=drill, limit=1000)
                if drill
                else None,
            )

        # every admin sees the same figures: a burst of the same page is computed once
        totals, series, active, drill_sessions = await self.service.shared_report(
            ("admin", window, aggregate, drill), lambda: self.run_db(figures), ttl=SHARED_SECONDS
        )
        self.render_page(
            "usage/admin.html",
            totals=totals,
            aggregate=aggregate,
            start=start,
            end=end,
            chart=chart_series(series, "server_hours", top=CHART_NAMES + 1),
            active=active,
            drill=drill,
            drill_sessions=drill_sessions,
            window=f"{reports.iso(window.start_ms)},{reports.iso(window.end_ms)}",
            figures=FIGURES,
            is_admin=True,
        )
