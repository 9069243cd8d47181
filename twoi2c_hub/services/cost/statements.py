"""Monthly statements: the months to choose from (`statements/`, with a month picker; JSON
at `api/v1/statements`), each month's printable page (`statements/YYYY-MM`) and its API
(`api/v1/statements/YYYY-MM`: JSON, or CSV of the summary or, with
`lines=person|group|resource`, of those lines).

Hub admins and the community admins read everyone's statement; a fleet's token
(`custom:cost:statements`) reads it without the person lines (no name leaves the hub);
a group lead reads their group's (`?group=NAME`: that group's people and resources
only); anyone else gets 403, in words."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from tornado import web

from ...accounting.bills import Fee, group_statement, statement
from ...accounting.models import from_ms
from ...accounting.statement_lines import LINE_COSTS, LINE_HOURS, months_with_activity
from ..framework import APIHandler, BadParameter, PageHandler
from .metrics import now_ms

# a fleet's token reads the statements with this scope alone: no person's figures, no top-up
STATEMENTS_SCOPE = "custom:cost:statements"
STATEMENT_COLUMNS = ["month", "currency", "bill", "attributed", "unattributed", "cloud_cost", "fee", "total",
                     "cost_recovery", "period_start", "period_end", "complete"]  # fmt: skip
GROUP_COLUMNS = ["month", "group", "currency", "total", "period_start", "period_end", "complete"]
LINE_KINDS = ("person", "group", "resource")
LINE_COLUMNS = {"person": ["name", *LINE_COSTS], "group": ["name", *LINE_COSTS], "resource": ["name", "cost"]}
NOT_YOURS = "Statements are for hub admins, the community admins and group leads."


def month_of(value: str, now: int | None = None) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{4})-(\d{2})", value)
    if not match or not 1 <= int(match.group(2)) <= 12 or not 2000 <= int(match.group(1)) <= 2200:
        raise BadParameter("month", f"'{value[:20]}' is not a month like 2026-11")
    year, month = int(match.group(1)), int(match.group(2))
    if now is not None:
        today = from_ms(now).date()
        if (year, month) > (today.year, today.month):
            raise BadParameter("month", f"{value} has not begun: a statement runs to today at the latest")
    return year, month


def may_read_everyones(handler, user: dict) -> bool:
    return handler.may_read_all(user) or STATEMENTS_SCOPE in handler.scopes(user)


def check_reader(handler, group: str | None) -> dict:
    """The person asking, if they may read this statement (everyone's, or `group`'s)."""
    user = handler.current_user
    if user is None:
        raise web.HTTPError(403, "Log in to read statements.")
    led = sorted(handler.led_groups(user))
    if group is None:
        if may_read_everyones(handler, user):
            return user
        if led:
            raise web.HTTPError(403, f"You may read the statements of the groups you lead ({', '.join(led)}) only: "
                                     f"add ?group={led[0]} to the address.")  # fmt: skip
        raise web.HTTPError(403, NOT_YOURS)
    if handler.may_read_all(user) or group in led:
        return user
    if led:
        raise web.HTTPError(403, f"You lead {', '.join(led)}: you may not read the statements of {group}.")
    raise web.HTTPError(403, NOT_YOURS)


async def compute(handler, month: str, group: str | None) -> dict:
    check_reader(handler, group)
    now = now_ms()
    year, number = month_of(month, now)
    service = handler.service
    if group is not None:
        return await handler.run_db(lambda db: group_statement(db, service.basis, year, number, group, now))
    fee = Fee(service.fee.monthly, service.fee.percent)
    data = await handler.run_db(lambda db: statement(db, service.basis, year, number, fee, now))
    if not handler.may_read_all(handler.current_user):
        # a fleet's token: no person's figures, no name leaves the hub
        data["lines"] = {kind: value for kind, value in data["lines"].items() if kind != "person"}
        data["lines"]["totals"] = {k: v for k, v in data["lines"]["totals"].items() if k != "person"}
    return data


async def index(handler) -> dict:
    """The months with sessions or bills, newest first, and the groups the reader leads."""
    user = handler.current_user
    if user is None:
        raise web.HTTPError(403, "Log in to read statements.")
    everyone = may_read_everyones(handler, user)
    led = [] if handler.may_read_all(user) else sorted(handler.led_groups(user))
    if not everyone and not led:
        raise web.HTTPError(403, NOT_YOURS)
    months = await handler.run_db(lambda db: months_with_activity(db, now_ms()))
    return {"months": months, "everyone": everyone, "groups": led}


class StatementAPI(APIHandler):
    async def get(self, month: str) -> None:
        group = self.param_text("group") or None  # "" (the whole community): everyone's
        kind = self.param_choice("lines", LINE_KINDS)
        data = await compute(self, month, group)
        name = f"statement-{month}" + (f"-{group}" if group else "")
        if kind is not None:
            if kind not in data["lines"]:
                has = " and ".join(k for k in LINE_KINDS if k in data["lines"])
                raise BadParameter("lines", f"this statement has {has} lines for you")
            columns = LINE_COLUMNS[kind] + (list(LINE_HOURS) if group and kind == "person" else [])
            self.respond(data, csv_rows=data["lines"][kind], columns=columns, filename=f"{name}-{kind}")
        else:
            self.respond(data, csv_rows=[data], columns=GROUP_COLUMNS if group else STATEMENT_COLUMNS, filename=name)


class StatementsIndexAPI(APIHandler):
    async def get(self) -> None:
        self.respond(await index(self))


class StatementPage(PageHandler):
    @web.authenticated
    async def get(self, month: str) -> None:
        group = self.param_text("group") or None  # "" (the whole community): everyone's
        data = await compute(self, month, group)
        query = {"group": group} if group else {}
        self.render_page(
            "cost/statement.html",
            s=data,
            csv_query={
                kind: urlencode({**query, "format": "csv", **({"lines": kind} if kind else {})})
                for kind in ("", *LINE_KINDS)
            },  # fmt: skip
            is_admin=self.may_read_all(self.current_user),
        )


class StatementsIndexPage(PageHandler):
    @web.authenticated
    async def get(self) -> None:
        found = await index(self)
        month = self.get_argument("month", None)
        if month:  # the month picker's form
            group = self.param_text("group") or None  # "" (the whole community): everyone's
            month_of(month, now_ms())
            check_reader(self, group)
            query = f"?{urlencode({'group': group})}" if group else ""
            self.redirect(f"{self.service.prefix}statements/{month}{query}")
            return
        self.render_page(
            "cost/statements.html",
            this_month=found["months"][0] if found["months"] else None,
            latest=now_month(),
            is_admin=self.may_read_all(self.current_user),
            **found,
        )


def now_month() -> str:
    return f"{from_ms(now_ms()):%Y-%m}"
