"""One group's figures for its lead (and the community admins): its people's hours and
cost as counted for the group, its resources, and its budgets (a shared one, or each
member's of a per-person one): the page `groups/NAME`
(a period form) and the API `api/v1/groups/NAME?window=` (JSON, or CSV of the people).

A group lead holds `custom:cost:read-group!group=NAME` (the config's `group_leads`); they
read the groups they lead and get 403 for any other."""

from __future__ import annotations

from datetime import UTC, datetime

from tornado import web

from ...accounting import budgets
from ...accounting.opencost import iso
from ...accounting.statement_lines import LINE_COSTS, LINE_HOURS, group_lines, group_people
from ..framework import APIHandler, PageHandler
from ..framework import params as parse
from .budgethandlers import budget_line
from .metrics import now_ms


def check_group_reader(handler, group: str) -> dict:
    user = handler.current_user
    if user is None:
        raise web.HTTPError(403, "Log in to read a group's figures.")
    if handler.may_read_group(user, group):
        return user
    led = sorted(handler.led_groups(user))
    if led:
        raise web.HTTPError(403, f"You lead {', '.join(led)}: you may not read the figures of {group}.")
    raise web.HTTPError(403, "A group's figures are for its group leads, the community admins and hub admins.")


async def group_figures(handler, group: str, start_ms: int, end_ms: int) -> dict:
    service = handler.service
    now = now_ms()

    def work(db):
        lines = group_lines(db, service.basis, start_ms, end_ms, group, now)
        statuses = [
            budget_line(budgets.status(db, service.basis, budget, subject, group, now), service.currency)
            for budget in service.budgets
            if budget.applies_to == "group" and group in budget.names
            # a budget each member has: each member's, who was in the group in its period
            for subject in (group_people(db, group, budget.period(now)[0], now) if budget.per_person else [group])
        ]
        return lines, statuses

    lines, statuses = await handler.run_db(work)
    return {
        "group": group,
        "window": {"start": iso(start_ms), "end": iso(min(end_ms, now))},
        "currency": service.currency,
        "group_rule": service.basis.group_rule,
        "lines": lines,
        "budgets": statuses,
    }


class GroupAPI(APIHandler):
    async def get(self, group: str) -> None:
        check_group_reader(self, group)
        window = parse.window("window", self.get_argument("window", None), datetime.now(UTC), "month")
        data = await group_figures(self, group, *window)
        data["budgets"] = [line.model_dump(mode="json", by_alias=True) for line in data["budgets"]]
        columns = ["name", *LINE_HOURS, *LINE_COSTS]
        self.respond(data, csv_rows=data["lines"]["person"], columns=columns, filename=f"group-{group}")


class GroupPage(PageHandler):
    @web.authenticated
    async def get(self, group: str) -> None:
        user = check_group_reader(self, group)
        window, start, end = self.period()
        data = await group_figures(self, group, window.start_ms, window.end_ms)
        self.render_page(
            "cost/group.html",
            g=data,
            start=start,
            end=end,
            this_month=f"{datetime.now(UTC):%Y-%m}",
            is_admin=self.may_read_all(user),
        )
