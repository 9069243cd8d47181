"""The usage service: a hub-managed tornado app at /services/usage/.

Run by the hub (configure() adds it to c.JupyterHub.services) as
`python -m twoi2c_hub.services.usage --config community.yaml`; it reads the hub's
environment (JUPYTERHUB_API_TOKEN, JUPYTERHUB_SERVICE_URL, ...) and its own
(TWOI2C_USAGE_DATABASE_URL, TWOI2C_USAGE_EVENTS_TOKEN, TWOI2C_USAGE_RECONCILE_INTERVAL, and
the fleet secret's variable when `usage.fleet_secret_env` names one).
Its settings are listed by `python -m twoi2c_hub.services.usage --help-all`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from tornado import web
from traitlets import Float, default

from ...accounting.fleet import MIN_SECRET_BYTES
from ...accounting.forgetting import expire, months_before
from ...accounting.reports import iso
from ...catalog.pricing import PriceTable, Rates, cpu_and_memory_rates
from ...config.loading import ConfigError
from ..framework import HubService
from ..framework.charts import CHART_LIBRARY_ROUTE
from ..framework.lifecycle import every
from . import apihandlers, handlers
from .intake import EventIntake, now_ms
from .measuring import PrometheusPods, UseSampler
from .metrics import UsageMetrics
from .reconciler import Reconciler

log = logging.getLogger("twoi2c.usage")

DEFAULT_DATABASE_URL = "sqlite:///twoi2c-usage.sqlite"
READ_ALL_SCOPE = "custom:usage:read-all"


class UsageService(HubService):
    """Sessions in (the spawners' events, reconciliation with the hub), usage out."""

    name = "usage"
    description = "The usage service: sessions recorded, usage reported (run by the hub)."
    what = "usage"
    read_all_scope = READ_ALL_SCOPE
    read_group_scope = "custom:usage:read-group"  # a group lead's: `...!group=NAME`
    error_template = "usage/error.html"

    aliases = {**HubService.aliases, "interval": "UsageService.reconcile_interval"}

    reconcile_interval = Float(
        config=True,
        help="""Seconds between reconciliations with the hub (the community config's
        `usage.reconcile_interval`, which the hub passes as TWOI2C_USAGE_RECONCILE_INTERVAL).""",
    )
    measure_interval = Float(
        config=True,
        help="""Seconds between samples of what each running server uses (the community
        config's `usage.measure_interval`, passed as TWOI2C_USAGE_MEASURE_INTERVAL); 0: none.""",
    )
    retention_interval = Float(
        6 * 3600,
        config=True,
        help="""Seconds between applications of the retention period
        (`usage.retention_months`).""",
    )

    @default("database_url")
    def _database_url_default(self) -> str:
        return os.environ.get("TWOI2C_USAGE_DATABASE_URL", DEFAULT_DATABASE_URL)

    @default("reconcile_interval")
    def _reconcile_interval_default(self) -> float:
        return float(os.environ.get("TWOI2C_USAGE_RECONCILE_INTERVAL", "30"))

    @default("measure_interval")
    def _measure_interval_default(self) -> float:
        return float(os.environ.get("TWOI2C_USAGE_MEASURE_INTERVAL", "30"))

    @cached_property
    def events_token(self) -> str:
        return os.environ.get("TWOI2C_USAGE_EVENTS_TOKEN", "")

    @cached_property
    def fleet_secret(self) -> bytes | None:
        """The key of the people's digests for the fleet, from the variable
        `usage.fleet_secret_env` names; None when the hub is not part of a fleet."""
        variable = self.community.usage.fleet_secret_env if self.community else None
        if variable is None:
            return None
        try:
            return fleet_secret(variable, os.environ.get(variable, ""))
        except ValueError as e:
            raise ConfigError(self.community_config, [f"usage.fleet_secret_env: {e}"]) from None

    @cached_property
    def metrics(self) -> UsageMetrics:
        return UsageMetrics(self.metrics_registry)

    @cached_property
    def intake(self) -> EventIntake:
        return EventIntake(self.open_db, self.metrics)

    def stopping(self) -> None:
        self.intake.last_write()  # what the database could not take yet

    @cached_property
    def reconciler(self) -> Reconciler:
        return Reconciler(
            self.open_db,
            hub_api=self.hub_api,
            catalog=self.community.profile_list() if self.community else [],
            interval=self.reconcile_interval,
            metrics=self.metrics,
            held_events_written=self.intake.write_held,
        )

    @cached_property
    def sampler(self) -> UseSampler:
        url = os.environ.get("TWOI2C_USAGE_PROMETHEUS_URL")
        return UseSampler(
            self.open_db,
            hub_api=self.hub_api,
            interval=self.measure_interval,
            prometheus=PrometheusPods(url) if url else None,
        )

    def memory_price(self, at_ms: int) -> tuple[float | None, str]:
        """The price of a GiB-hour of memory in force at `at_ms`, and the currency (None
        without prices per resource)."""
        table, currency = self._prices_in_force(at_ms)
        return (table.memory_gib_hour if table is not None else None), currency

    def efficiency_rates(self, at_ms: int) -> tuple[Callable[[str], Rates | None] | None, str]:
        """What a CPU core-hour and a memory GiB-hour cost on each instance type ("" for
        none) at the prices in force at `at_ms` (`cpu_and_memory_rates`: an instance
        type's price split OpenCost's way, else the resource prices); None without prices.
        And the currency."""
        table, currency = self._prices_in_force(at_ms)
        if table is None:
            return None, currency
        instances, market = self.community.instance_catalog(), self.community.pricing.market
        return (lambda instance_type: cpu_and_memory_rates(table, instances.get(instance_type), market)), currency

    def _prices_in_force(self, at_ms: int) -> tuple[PriceTable | None, str]:
        if self.community is None or self.community.pricing is None:
            return None, ""
        pricing = self.community.pricing.to_pricing()
        return pricing.in_force(datetime.fromtimestamp(at_ms / 1000, UTC).date()), pricing.currency

    def routes(self) -> list[tuple]:
        return [
            ("", handlers.UserPage),
            ("admin", handlers.AdminPage),
            ("api/v1/allocation", apihandlers.AllocationAPI),
            ("api/v1/sessions", apihandlers.SessionsAPI),
            ("api/v1/efficiency", apihandlers.EfficiencyAPI),
            ("api/v1/right-sizing", apihandlers.RightSizingAPI),
            ("api/v1/active-users", apihandlers.ActiveUsersAPI),
            ("api/v1/people-digests", apihandlers.PeopleDigestsAPI),
            ("api/v1/events", apihandlers.EventsAPI),
            ("api/v1/recent-use", apihandlers.RecentUseAPI),
            CHART_LIBRARY_ROUTE,
        ]

    def log_request(self, handler: web.RequestHandler) -> bool:
        # the spawners' events are many and routine: log them only when they fail
        return not isinstance(handler, apihandlers.EventsAPI)

    def update_metrics(self) -> None:
        if self.reconciler.last_reconciled_ms is not None:
            self.metrics.lag.set((now_ms() - self.reconciler.last_reconciled_ms) / 1000)

    def health_details(self) -> dict[str, Any]:
        return {
            "last_reconciled": iso(self.reconciler.last_reconciled_ms),
            "reconcile_interval_seconds": self.reconciler.interval,
        }

    def prepare(self) -> None:
        super().prepare()
        self.reconciler, self.intake, self.fleet_secret  # noqa: B018 - made on first use

    def apply_retention(self, now: int) -> int:
        """Unname what is older than `usage.retention_months`; returns how many people."""
        months = self.community.usage.retention_months if self.community else None
        if not months:
            return 0
        with self.open_db() as db:
            people = expire(db, months_before(now, months))
        if people:
            log.info("Retention: the rows of %d people older than %d months are unnamed", people, months)
        return people

    async def retain(self) -> None:
        await asyncio.to_thread(self.apply_retention, now_ms())

    def background(self) -> list[Awaitable[None]]:
        # both at once at start, then each `interval` after its last run ended
        errors = self.metrics.errors
        return [
            every(
                self.reconcile_interval,
                self.reconciler.reconcile,
                failed="Reconciliation failed",
                count_failure=errors.labels("reconcile").inc,
            ),
            *(
                [
                    every(
                        self.measure_interval,
                        self.sampler.sample,
                        failed="Measuring the running servers failed",
                        count_failure=errors.labels("measure").inc,
                    )
                ]
                if self.measure_interval > 0
                else []
            ),
            every(
                self.retention_interval,
                self.retain,
                failed="Applying the retention period failed",
                count_failure=errors.labels("retention").inc,
            ),
        ]


def fleet_secret(variable: str, value: str) -> bytes:
    """The fleet secret `value` (hex) of the environment variable `variable`, as bytes;
    ValueError, saying what to do, when it is empty, not hex or shorter than
    MIN_SECRET_BYTES."""
    make_one = f"`openssl rand -hex {MIN_SECRET_BYTES}`, the same on every hub of the fleet"
    if not value:
        raise ValueError(
            f"set the environment variable {variable} to the fleet secret ({make_one}), "
            "or remove fleet_secret_env if this hub is not part of a fleet"
        )
    try:
        secret = bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"${variable} is not a hex string; the fleet secret is written in hex ({make_one})") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(
            f"${variable} holds {len(secret)} bytes; the fleet secret needs at least {MIN_SECRET_BYTES} ({make_one})"
        )
    return secret


def main(argv: list[str] | None = None) -> int:
    return UsageService.main(argv)
