"""Budget alerts for the community admins, and the budgets' gauges on /metrics.

Every rollup interval, for the budgets of the hub, of whole groups (`per_person: false`)
and of named users: the spend, limit and (for calendar months) a month-end forecast are
set on gauges for Prometheus Alertmanager, and each alert level crossed (50/75/90/100 %
by default) and a forecast past the limit is sent once per budget and period (a forecast
only once the month's first days have passed: budgets.FORECAST_MIN_DAYS) (for a
rolling window: once, until spending falls below it again), by e-mail and/or a
Slack-compatible webhook. A notice is claimed in `budget_notices` before it is
sent and given back if no channel took it, so it is sent again later, never twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import smtplib
from email.message import EmailMessage

from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from tornado.httpclient import HTTPRequest

from ...accounting import budgets
from ...accounting.models import BudgetNotice
from ..framework.hubapi import fetch

log = logging.getLogger("twoi2c.cost")

# seconds an alert's delivery may take, by e-mail or webhook
DELIVERY_TIMEOUT_SECONDS = 20


class Alerter:
    def __init__(self, service, section, registry: CollectorRegistry):
        self.service = service
        self.section = section  # AlertsSection or None
        labels = ["budget", "subject"]
        self.spend = Gauge("twoi2c_budget_spend", "Spent in the budget's current period", labels, registry=registry)
        self.limit = Gauge("twoi2c_budget_limit", "The budget's limit, with top-ups", labels, registry=registry)
        self.forecast = Gauge(
            "twoi2c_budget_forecast",
            "Month-end forecast at the current rate (calendar months)",
            labels,
            registry=registry,
        )

    def subjects(self):
        for budget in self.service.budgets:
            if budget.applies_to == "hub":
                yield budget, "", None
            elif budget.applies_to == "user":
                for name in budget.names:
                    yield budget, name, None
            elif not budget.per_person:
                for name in budget.names:
                    yield budget, name, name

    def due(self, db, now: int) -> list[tuple[str, str]]:
        """Set the gauges; claim and return the (notice key, text) of every alert due."""
        due = []
        currency = self.service.currency
        for budget, subject, group in self.subjects():
            s = budgets.status(db, self.service.basis, budget, subject, group, now)
            self.spend.labels(budget.name, subject).set(s.used)
            self.limit.labels(budget.name, subject).set(s.limit)
            forecast = budgets.month_end_forecast(s, now)
            if forecast is not None and forecast.ready:
                self.forecast.labels(budget.name, subject).set(forecast.at_end)
            else:  # not last month's figure, nor one from the month's first hours
                self.forecast.remove(budget.name, subject)
            if self.section is None:
                continue
            whose = f"the hub's budget {budget.shown}" if not subject else f"{subject}'s budget {budget.shown}"
            # a calendar month's notices are the month's; a rolling window has no periods: a
            # level is said once, and again only after spending fell below it
            period = s.period_start_ms if budget.rolling_days is None else 0
            for level in sorted(self.section.at):
                kind = f"at:{level:g}"
                if s.percent < level:
                    if budget.rolling_days is not None:
                        self.give_back(db, (budget.name, subject, 0, kind))
                elif self.claim(db, budget.name, subject, period, kind, now):
                    due.append(((budget.name, subject, period, kind),
                                f"{whose} has reached {level:g} %: {budgets.describe(s, currency)}."))  # fmt: skip
            # the month's one forecast alert: never from its first days (see FORECAST_MIN_DAYS)
            if (
                self.section.forecast
                and forecast is not None
                and forecast.ready
                and forecast.at_end > s.limit
                and self.claim(db, budget.name, subject, period, "forecast", now)
            ):
                due.append(((budget.name, subject, period, "forecast"), self.forecast_alert(whose, s, forecast)))
        return due

    def forecast_alert(self, whose: str, s: budgets.BudgetStatus, forecast: budgets.Forecast) -> str:
        currency, unit = self.service.currency, s.budget.unit
        return (
            f"{whose} is on course to pass its limit of {budgets.amount(s.limit, unit, currency)} this month: "
            f"{budgets.forecast_text(forecast, unit, currency)}. {budgets.describe(s, currency)}."
        )

    def claim(self, db, budget: str, subject: str, period_start: int, kind: str, now: int) -> bool:
        key = dict(budget=budget, subject=subject, period_start_ms=period_start, kind=kind)
        if db.scalar(select(BudgetNotice.id).filter_by(**key)) is not None:
            return False
        db.add(BudgetNotice(**key, at_ms=now))
        try:
            db.commit()
        except IntegrityError:
            db.rollback()
            return False
        return True

    def give_back(self, db, key: tuple) -> None:
        budget, subject, period_start, kind = key
        db.execute(
            delete(BudgetNotice).filter_by(budget=budget, subject=subject, period_start_ms=period_start, kind=kind)
        )
        db.commit()

    async def run(self, now: int) -> int:
        due = await self.service.run_db(lambda db: self.due(db, now))
        sent = 0
        for key, text in due:
            delivered = await self.send(f"[{self.service.hub_name}] {text}")
            if delivered:
                sent += 1
            else:
                await self.service.run_db(lambda db, key=key: self.give_back(db, key))
        return sent

    async def send(self, text: str) -> bool:
        """Through every configured channel; True if any took it."""
        results = []
        if self.section.email is not None:
            results.append(await asyncio.to_thread(self.send_email, text))
        if self.section.webhook is not None:
            results.append(await self.send_webhook(text))
        return any(results)

    def send_email(self, text: str) -> bool:
        email = self.section.email
        message = EmailMessage()
        message["Subject"] = text.split(": ", 1)[0][:200]
        message["From"] = email.sender
        message["To"] = ", ".join(email.to)
        message.set_content(text)
        try:
            with smtplib.SMTP(email.smtp_host, email.smtp_port, timeout=DELIVERY_TIMEOUT_SECONDS) as smtp:
                if email.starttls:
                    smtp.starttls()
                if email.username:
                    smtp.login(email.username, os.environ.get(email.password_env or "", ""))
                smtp.send_message(message)
            return True
        except (OSError, smtplib.SMTPException) as e:
            self.service.metrics.errors.labels("alert-email").inc()
            log.warning("Budget alert e-mail not sent: %s", e)
            return False

    async def send_webhook(self, text: str) -> bool:
        hook = self.section.webhook
        url = hook.url or os.environ.get(hook.url_env or "", "")
        request = HTTPRequest(
            url,
            method="POST",
            body=json.dumps({"text": text}),
            headers={"Content-Type": "application/json"},
            request_timeout=DELIVERY_TIMEOUT_SECONDS,
            connect_timeout=DELIVERY_TIMEOUT_SECONDS,
        )
        try:
            await fetch(request, what="The budget alert webhook")
            return True
        except Exception as e:
            self.service.metrics.errors.labels("alert-webhook").inc()
            log.warning("Budget alert webhook not delivered: %s", e)
            return False
