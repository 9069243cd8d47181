"""Budgets in the cost service's API: a person's own budget state, the spawn-time check
the spawners ask for, and the ledger of top-ups and extensions.

- `GET api/v1/budgets[?user=]`: the budgets that apply to the reader (or, for hub admins
  and community admins, to `user`), what each has used and left, and the decision.
- `POST api/v1/budgets/check` (the spawners, with the check token): may this person start
  this server? `{"allowed", "action", "message", "price_per_hour", "budgets"}`.
- `GET|POST api/v1/ledger`: top-ups and extensions, given by hub admins and community
  admins, with who, when and why.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from tornado import web

from ...accounting import budgets
from ...accounting.events import EventError
from ...accounting.models import LedgerEntry, from_ms
from ...accounting.posted import parse_server_summary
from ...accounting.recording import groups_at
from ...accounting.reports import iso
from ...catalog import PricingError, ServerResources
from ...catalog.budget_answer import BudgetLine
from ..framework import APIHandler, BadParameter, TokenPostHandler
from ..framework import params as parse
from .metrics import now_ms


def budget_line(s: budgets.BudgetStatus, currency: str) -> BudgetLine:
    return BudgetLine(
        budget=s.budget.name,
        display_name=s.budget.shown,
        applies_to=s.budget.applies_to,
        subject=s.subject,
        unit=s.budget.unit,
        currency=currency if s.budget.unit == "money" else None,
        used=round(s.used, 6),
        limit=round(s.limit, 6),
        left=round(s.left, 6),
        percent=round(s.percent, 2),
        action=s.action,
        period=s.budget.period_text,
        period_start=iso(s.period_start_ms),
        resets=iso(s.resets_ms),
        extended_until=iso(s.extended_until_ms),
        text=budgets.describe(s, currency),
    )


def server_of(raw) -> ServerResources:
    """The resources in a spawner's server summary (ResolvedServer.summary()), checked as the
    usage service checks a start event's (`ServerSummary`)."""
    try:
        return parse_server_summary(raw).resources()
    except EventError as e:
        if "number" in e.problem:
            # the words the budget check has always answered with, and now which field
            raise BadParameter("server", f"{repr(e.value)[:40]} is not a resource amount ({e.field})") from None
        raise BadParameter("server", e.problem if e.field == "server" else f"{e.field} {e.problem}") from None


class BudgetsAPI(APIHandler):
    async def get(self) -> None:
        user = self.reader()
        subject = self.subject(user) or user["name"]
        service = self.service
        now = now_ms()

        def work(db):
            groups = user.get("groups", []) if subject == user["name"] else groups_at(db, subject, now)
            return service.check(db, subject, groups, None, now)

        self.respond((await self.run_db(work)).wire())


class BudgetCheckAPI(TokenPostHandler):
    """The spawn-time check: the spawner sends who and what; the answer says whether it
    may start, and if not, why, with the numbers."""

    what = "A budget check"

    def expected_token(self) -> str:
        return self.service.check_token

    async def post(self) -> None:
        body = self.json_body()
        if not isinstance(body, dict):
            raise BadParameter("body", "must be an object")
        username = parse.text("username", body.get("username"))
        if not username:
            raise BadParameter("username", "is required")
        groups = body.get("groups") or []
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise BadParameter("groups", "must be a list of group names")
        server = server_of(body["server"]) if body.get("server") is not None else None
        service = self.service
        now = now_ms()
        try:
            answer = await self.run_db(lambda db: service.check(db, username, groups, server, now))
        except PricingError as e:
            raise BadParameter("server", str(e)) from None
        self.respond(answer.wire())


class LedgerAPI(APIHandler):
    async def get(self) -> None:
        user = self.reader()
        subject = self.subject(user)

        def work(db):
            query = select(LedgerEntry).order_by(LedgerEntry.at_ms.desc()).limit(1000)
            if subject is not None:
                query = query.where(LedgerEntry.subject == subject)
            return [entry_json(e) for e in db.scalars(query)]

        self.respond(await self.run_db(work), columns=LEDGER_COLUMNS, filename="budget-ledger")

    async def post(self) -> None:
        user = self.reader()
        if not self.may_read_all(user):
            raise web.HTTPError(403, "Only hub admins and the community admins give top-ups and extensions.")
        entry = ledger_entry(self, user)

        def work(db):
            db.add(entry)
            db.commit()
            return entry_json(entry)

        self.set_status(201)
        self.respond(await self.run_db(work))


LEDGER_COLUMNS = ["at", "budget", "subject", "kind", "amount", "until", "by", "reason"]


def entry_json(e: LedgerEntry) -> dict:
    return {
        "at": iso(e.at_ms),
        "budget": e.budget,
        "subject": e.subject,
        "kind": e.kind,
        "amount": e.amount,
        "until": from_ms(e.until_ms).date().isoformat() if e.until_ms else None,
        "by": e.by,
        "reason": e.reason,
    }


def ledger_entry(handler, user: dict) -> LedgerEntry:
    """A top-up or extension from a request's arguments (form or query), checked."""
    service = handler.service
    budget = parse.choice("budget", handler.get_argument("budget", None), [b.name for b in service.budgets])
    if budget is None:
        raise BadParameter("budget", "is required")
    subject = parse.text("subject", handler.get_argument("subject", ""))
    kind = parse.choice("kind", handler.get_argument("kind", None), ("topup", "extension"))
    reason = parse.text("reason", handler.get_argument("reason", "").strip(), max_length=500)
    if not reason:
        raise BadParameter("reason", "say why (it is kept in the ledger)")
    entry = LedgerEntry(budget=budget, subject=subject or "", kind=kind, by=user["name"], reason=reason, amount=0.0)
    entry.at_ms = now_ms()
    if kind == "topup":
        amount = parse.number("amount", handler.get_argument("amount", None), low=0.0, high=1e9)
        if not amount:
            raise BadParameter("amount", "give an amount above 0")
        entry.amount = amount
    elif kind == "extension":
        until = parse.day("until", handler.get_argument("until", None))
        if until is None or until <= datetime.now(UTC).date():
            raise BadParameter("until", "give a date after today (YYYY-MM-DD)")
        entry.until_ms = int(datetime(until.year, until.month, until.day, tzinfo=UTC).timestamp() * 1000)
    else:
        raise BadParameter("kind", "is topup or extension")
    return entry
