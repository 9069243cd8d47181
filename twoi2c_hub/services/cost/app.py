"""The cost service: a hub-managed tornado app at /services/cost/.

Run by the hub when the community config has `pricing:` (configure() adds it to
c.JupyterHub.services) as `python -m twoi2c_hub.services.cost --config community.yaml`.
It reads the sessions the usage service records (the same database,
TWOI2C_COST_DATABASE_URL) and keeps the daily cost rollups up to date with the prices in
the config: when the prices change, every rollup is computed again at start.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable
from functools import cached_property
from typing import Any

from traitlets import Bool, Float, default

from ...accounting import budgets, use
from ...accounting.costs import CostBasis, roll_up_costs
from ...accounting.models import DAY_MS, from_ms
from ...accounting.reports import iso
from ...accounting.storage import record_home_sizes
from ...catalog.budget_answer import BudgetAnswer, RecentUse
from ...config.loading import ConfigError, load_config
from ..framework import HubService
from ..framework.charts import CHART_LIBRARY_ROUTE
from ..framework.lifecycle import every
from . import apihandlers, budgethandlers, groups, handlers, running, statements, storage
from .alerts import Alerter
from .enforcer import Enforcer
from .metrics import CostMetrics, now_ms

log = logging.getLogger("twoi2c.cost")

READ_ALL_SCOPE = "custom:cost:read-all"
READ_GROUP_SCOPE = "custom:cost:read-group"  # a group lead's, filtered: ...!group=NAME


class CostService(HubService):
    """Prices, cost rollups, budgets (alerts and stops) and the cost reports."""

    name = "cost"
    description = "The cost service: what each person, group and profile cost, and budgets (run by the hub)."
    what = "costs"
    read_all_scope = READ_ALL_SCOPE
    read_group_scope = READ_GROUP_SCOPE
    error_template = "usage/error.html"

    flags = {
        **HubService.flags,
        "checks-only": ({"CostService": {"checks_only": True}}, "Serve only the spawn-time budget check."),
    }

    checks_only = Bool(
        False,
        config=True,
        help="""Serve only the spawn-time budget check (the hub's `cost-checks` service, a
        process of its own at the hub's CPU priority).""",
    )
    rollup_interval = Float(
        config=True,
        help="""Seconds between rounds of cost rollups, budget stops, alerts and home
        directory measurements (the community config's `cost.rollup_interval`).""",
    )

    @default("database_url")
    def _database_url_default(self) -> str:
        return os.environ.get("TWOI2C_COST_DATABASE_URL", "sqlite:///twoi2c-usage.sqlite")

    @default("rollup_interval")
    def _rollup_interval_default(self) -> float:
        return self.community.cost.rollup_interval

    @cached_property
    def community(self):
        if not self.community_config:
            raise ConfigError("--config", ["the cost service needs the community config (its pricing: section)"])
        community = load_config(self.community_config, overrides=False)
        if community.pricing is None:
            raise ConfigError(self.community_config, ["pricing: the cost service needs prices"])
        return community

    @cached_property
    def basis(self) -> CostBasis:
        pricing = self.community.pricing
        return CostBasis(
            pricing.to_pricing(),
            self.community.instance_catalog(),
            group_rule=pricing.group_rule,
            primary_groups=tuple(pricing.primary_groups),
        )

    @property
    def interval(self) -> float:
        return self.rollup_interval

    @property
    def fee(self):
        return self.community.pricing.fee

    @cached_property
    def metrics(self) -> CostMetrics:
        return CostMetrics(self.metrics_registry)

    @cached_property
    def budgets(self) -> list[budgets.Budget]:
        section = self.community.budgets
        return [budget_of(spec) for spec in section.budgets] if section else []

    @property
    def combine(self) -> str:
        section = self.community.budgets
        return section.combine if section else "least_generous"

    @property
    def contact(self) -> str | None:
        section = self.community.budgets
        return section.contact if section else None

    @cached_property
    def check_token(self) -> str:
        """The spawners' token for api/v1/budgets/check."""
        return os.environ.get("TWOI2C_COST_CHECK_TOKEN", "")

    @property
    def hub_name(self) -> str:
        return self.community.hub.name

    @cached_property
    def alerter(self) -> Alerter:
        section = self.community.budgets
        return Alerter(self, section.alerts if section else None, self.metrics_registry)

    @cached_property
    def enforcer(self) -> Enforcer:
        return Enforcer(self, self.hub_api)

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.last_rolled_up_ms: int | None = None
        self.homes_measured_ms: int | None = None

    def prepare(self) -> None:
        super().prepare()
        self.basis, self.metrics, self.budgets, self.alerter, self.enforcer, self.interval  # noqa: B018

    def routes(self) -> list[tuple]:
        return [
            ("", handlers.UserPage),
            ("admin", handlers.AdminPage),
            ("admin/ledger", handlers.LedgerForm),
            ("admin/running", running.RunningPage),
            CHART_LIBRARY_ROUTE,
            ("api/v1/cost", apihandlers.CostAPI),
            ("api/v1/budgets", budgethandlers.BudgetsAPI),
            ("api/v1/budgets/check", budgethandlers.BudgetCheckAPI),
            ("api/v1/ledger", budgethandlers.LedgerAPI),
            ("api/v1/statements/?", statements.StatementsIndexAPI),
            (r"api/v1/statements/([^/]+)", statements.StatementAPI),
            ("statements/?", statements.StatementsIndexPage),
            (r"statements/([^/]+)", statements.StatementPage),
            (r"api/v1/groups/([^/]+)", groups.GroupAPI),
            (r"groups/([^/]+)", groups.GroupPage),
        ]

    # --- budgets --------------------------------------------------------------------------

    @property
    def currency(self) -> str:
        return self.basis.pricing.currency

    def decide(self, db, username: str, groups, now: int) -> budgets.Decision:
        return budgets.decide(db, self.basis, self.budgets, self.combine, username, groups, now)

    def check(self, db, username: str, groups, server, now: int) -> BudgetAnswer:
        """May `username` start `server` (None: just the state, for the spawn page)?"""
        decision = self.decide(db, username, groups, now)
        s = decision.decisive
        answer = BudgetAnswer(
            allowed=True,
            action=decision.action,
            message=None,
            contact=self.contact,
            as_of=now,
            decisive=s.budget.name if s else None,
            budgets=[budgethandlers.budget_line(status, self.currency) for status in decision.statuses],
        )
        if server is not None:
            price = self.basis.pricing.hourly(server, from_ms(now).date(), self.basis.instances)
            answer.price_per_hour = round(price.total, 6)
            answer.currency = self.currency
        if server is None:  # the spawn page's question: beside each choice, what was used of it
            recent = use.recent_use(db, username, now - use.RECENT_USE_DAYS * DAY_MS)
            if recent:
                answer.recent_use = {profile: RecentUse(**figures) for profile, figures in recent.items()}
        if s is None:
            return answer
        if decision.action == "stop":
            answer.stop_at = iso(self.enforcer.stop_at(db, s, now))
        if decision.severity >= budgets.ACTIONS.index("deny"):
            answer.allowed = False
            answer.message = f"Your budget is used up. {budgets.describe(s, self.currency)}."
        elif decision.action == "restrict" and server is not None:
            per_hour = budgets.hourly_in_unit(self.basis, s.budget.unit, server, now)
            if per_hour > s.left:
                answer.allowed = False
                cost = budgets.amount(per_hour, s.budget.unit, self.currency)
                answer.message = (
                    f"This choice uses {cost} an hour, more than is left of your budget. "
                    f"{budgets.describe(s, self.currency)}. Choose a smaller one."
                )
        if not answer.allowed:
            self.metrics.denials.labels(s.budget.name).inc()
        if answer.message and self.contact:
            answer.message += f" {self.contact}"
        return answer

    def health_details(self) -> dict[str, Any]:
        return {
            "last_rolled_up": iso(self.last_rolled_up_ms),
            "rollup_interval_seconds": self.interval,
            "currency": self.basis.pricing.currency,
        }

    async def roll_up(self) -> int:
        now = now_ms()
        # sessions a little after they close, like the usage rollups: a late exact stop
        # from the spawner can still replace an inferred one
        done = await self.run_db(lambda db: roll_up_costs(db, self.basis, now, grace_ms=int(2 * self.interval * 1000)))
        self.last_rolled_up_ms = now
        return done

    async def measure_homes(self, now: int) -> None:
        """Measure home directories every `home_storage.interval` seconds."""
        homes = self.community.cost.home_storage
        if homes is None or (self.homes_measured_ms and now - self.homes_measured_ms < homes.interval * 1000):
            return
        self.homes_measured_ms = now
        try:
            if homes.source == "local":
                sizes = await asyncio.to_thread(storage.measure_local, homes.directory)
            else:
                sizes = await storage.measure_prometheus(homes.prometheus_url, homes.query, homes.label)
        except Exception as e:
            self.metrics.errors.labels("home-storage").inc()
            log.warning("Home directories not measured: %s", e)
            return
        await self.run_db(lambda db: record_home_sizes(db, sizes, now))

    async def cost_round(self) -> None:
        """The rollups, then budget stops, alerts and home directories (a failure of one
        ends the round: the next round tries again)."""
        done = await self.roll_up()
        if done:
            log.info("Added %d closed sessions to the cost rollups", done)
        await self.enforcer.enforce(now_ms())
        if self.budgets:
            await self.alerter.run(now_ms())
        await self.measure_homes(now_ms())

    def background(self) -> list[Awaitable[None]]:
        return [
            every(
                self.rollup_interval,
                self.cost_round,
                failed="Cost rollup failed",
                count_failure=self.metrics.errors.labels("rollup").inc,
            )
        ]


class BudgetCheckService(CostService):
    """Only the spawn-time budget check, in a process of its own at the hub's CPU priority.

    A spawn waits for this answer: in the cost service it would wait behind a running
    report (they share one interpreter lock) and the reports' lower CPU priority. The same
    code decides; the figures are read from the same database."""

    name = "cost-checks"
    # the schema is the cost service's to bring up to date, not the checks'
    migrates = False

    @default("niceness")
    def _niceness_default(self) -> int:
        return 0  # a spawn waits for it: at the hub's priority

    @default("idle_db_work")
    def _idle_db_work_default(self) -> bool:
        return False  # a spawn waits for it: not behind a report's CPU

    @default("sqlite_page_cache_kib")
    def _page_cache_default(self) -> int:
        # a check reads one person's sessions this month, a few pages the system's file
        # cache holds anyway: a small cache of its own bounds the process's memory soon,
        # where SQLite's 2 MB for each of its connections filled over hours of a class
        return 256

    def routes(self) -> list[tuple]:
        return [("api/v1/budgets/check", budgethandlers.BudgetCheckAPI)]

    def background(self) -> list[Awaitable[None]]:
        """The cost service rolls up, alerts and stops; this one only answers."""
        return []


def budget_of(spec) -> budgets.Budget:
    """A budget of the config as the accounting layer takes it."""
    return budgets.Budget(
        name=spec.name,
        applies_to=spec.applies_to,
        names=tuple(spec.names),
        limit=spec.limit,
        unit=spec.unit,
        per_person=spec.per_person,
        rolling_days=spec.rolling_days,
        thresholds=tuple(budgets.Threshold(t.at, t.action, t.grace_minutes * 60) for t in spec.thresholds),
        display_name=spec.display_name,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    kind = BudgetCheckService if "--checks-only" in argv else CostService
    return kind.main(argv)
