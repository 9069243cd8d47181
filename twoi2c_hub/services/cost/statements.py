"""A community's monthly statement: `api/v1/statements/YYYY-MM` (JSON or CSV) and a
printable page at `statements/YYYY-MM`, for hub admins and the community admins."""

from __future__ import annotations

import re

from tornado import web

from ...accounting.bills import Fee, statement
from ..framework import APIHandler, BadParameter, PageHandler
from .metrics import now_ms

# a fleet's token reads the statements with this scope alone: no person's figures, no top-up
STATEMENTS_SCOPE = "custom:cost:statements"
STATEMENT_COLUMNS = ["month", "currency", "bill", "attributed", "unattributed", "cloud_cost", "fee", "total",
                     "cost_recovery"]  # fmt: skip


def month_of(value: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{4})-(\d{2})", value)
    if not match or not 1 <= int(match.group(2)) <= 12 or not 2000 <= int(match.group(1)) <= 2200:
        raise BadParameter("month", f"'{value[:20]}' is not a month like 2026-11")
    return int(match.group(1)), int(match.group(2))


async def compute(handler, month: str) -> dict:
    user = handler.current_user
    if user is None:
        raise web.HTTPError(403, "Log in to read statements.")
    if not (handler.may_read_all(user) or STATEMENTS_SCOPE in handler.scopes(user)):
        raise web.HTTPError(403, "Statements are for hub admins and the community admins.")
    year, number = month_of(month)
    service = handler.service
    fee = Fee(service.fee.monthly, service.fee.percent)
    now = now_ms()
    return await handler.run_db(lambda db: statement(db, service.basis, year, number, fee, now))


class StatementAPI(APIHandler):
    async def get(self, month: str) -> None:
        data = await compute(self, month)
        self.respond(data, csv_rows=[data], columns=STATEMENT_COLUMNS, filename=f"statement-{month}")


class StatementPage(PageHandler):
    @web.authenticated
    async def get(self, month: str) -> None:
        data = await compute(self, month)
        self.render_page("cost/statement.html", s=data, is_admin=True)
