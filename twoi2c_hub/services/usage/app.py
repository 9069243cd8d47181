"""The usage service: a hub-managed tornado app at /services/usage/.

Run by the hub (configure() adds it to c.JupyterHub.services) as
`python -m twoi2c_hub.services.usage --config community.yaml`; it reads the hub's
environment (JUPYTERHUB_API_TOKEN, JUPYTERHUB_SERVICE_URL, ...) and its own
(TWOI2C_USAGE_DATABASE_URL, TWOI2C_USAGE_EVENTS_TOKEN, TWOI2C_USAGE_RECONCILE_INTERVAL).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from typing import Any

from tornado import web

from ...accounting.db import make_engine, session_maker, upgrade
from ...accounting.forgetting import expire, months_before
from ...accounting.reports import iso
from ...config.loading import ConfigError, load_config
from ..framework import HubService
from ..framework.charts import CHART_LIBRARY_ROUTE
from ..framework.pages import branding
from . import apihandlers, handlers
from .intake import EventIntake, now_ms
from .metrics import UsageMetrics
from .reconciler import Reconciler

log = logging.getLogger("twoi2c.usage")

DEFAULT_DATABASE_URL = "sqlite:///twoi2c-usage.sqlite"
READ_ALL_SCOPE = "custom:usage:read-all"


class UsageService(HubService):
    name = "usage"
    what = "usage"
    read_all_scope = READ_ALL_SCOPE
    error_template = "usage/error.html"

    def __init__(self, *, community_config: str | None, database_url: str, interval: float):
        self.community = load_config(community_config) if community_config else None
        upgrade(database_url)
        engine = make_engine(database_url)
        super().__init__(engine=engine, open_db=session_maker(engine), branding=branding(self.community))
        self.events_token = os.environ.get("TWOI2C_USAGE_EVENTS_TOKEN", "")
        self.metrics = UsageMetrics(self.metrics_registry)
        self.intake = EventIntake(self.open_db, self.metrics)
        self.reconciler = Reconciler(
            self.open_db,
            hub_api=self.hub_api,
            catalog=self.community.profile_list() if self.community else [],
            interval=interval,
            metrics=self.metrics,
        )

    def routes(self) -> list[tuple]:
        return [
            ("", handlers.UserPage),
            ("admin", handlers.AdminPage),
            ("api/v1/allocation", apihandlers.AllocationAPI),
            ("api/v1/sessions", apihandlers.SessionsAPI),
            ("api/v1/active-users", apihandlers.ActiveUsersAPI),
            ("api/v1/events", apihandlers.EventsAPI),
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

    # the retention period is applied this often (seconds)
    retention_every = 6 * 3600
    _retention_applied_ms = 0

    def apply_retention(self, now: int) -> int:
        """Unname what is older than `usage.retention_months`; returns how many people."""
        months = self.community.usage.retention_months if self.community else None
        if not months:
            return 0
        with self.open_db() as db:
            people = expire(db, months_before(now, months))
        self._retention_applied_ms = now
        if people:
            log.info("Retention: the rows of %d people older than %d months are unnamed", people, months)
        return people

    async def background(self) -> None:
        while True:
            try:
                await self.reconciler.reconcile()
            except Exception:
                self.metrics.errors.labels("reconcile").inc()
                log.exception("Reconciliation failed; will try again")
            if now_ms() - self._retention_applied_ms > self.retention_every * 1000:
                try:
                    await asyncio.to_thread(self.apply_retention, now_ms())
                except Exception:
                    self.metrics.errors.labels("retention").inc()
                    log.exception("Applying the retention period failed; will try again")
            await asyncio.sleep(self.reconciler.interval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m twoi2c_hub.services.usage")
    parser.add_argument("--config", help="the community config file (profiles resolve reconciled sessions)")
    parser.add_argument("--database-url", default=os.environ.get("TWOI2C_USAGE_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument(
        "--interval",
        type=float,
        default=float(os.environ.get("TWOI2C_USAGE_RECONCILE_INTERVAL", "30")),
        help="seconds between reconciliations with the hub",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(levelname)1.1s %(asctime)s %(name)s] %(message)s")
    try:
        service = UsageService(community_config=args.config, database_url=args.database_url, interval=args.interval)
    except ConfigError as e:
        log.error("%s", e)
        return 1
    asyncio.run(service.serve())
    return 0
