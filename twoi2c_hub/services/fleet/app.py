"""The fleet service (`/services/fleet/` on the operator's hub, `fleet_view:` in its
community config): the fleet's figures as pages and an API, for the operator groups (and
hub admins) only, from the fleet's database; it collects from the hubs every
`collect_interval` seconds (`twoi2c-hub fleet collect` does the same by hand)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from functools import cached_property
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge
from sqlalchemy.engine import Engine
from traitlets import Float, Unicode

from ...accounting.db import make_engine
from ...accounting.fleet_store import upgrade
from ...config.fleet import FleetConfig, load_fleet
from ..framework import HubService
from ..framework.lifecycle import every
from . import handlers, pages, report
from .collect import collect

log = logging.getLogger("twoi2c.fleet")


class FleetService(HubService):
    name = "fleet"
    what = "fleet's figures"
    read_all_scope = "custom:fleet:read"
    error_template = "fleet/error.html"

    aliases = {**HubService.aliases, "fleet-config": "FleetService.fleet_config"}

    fleet_config = Unicode(
        "",
        config=True,
        help="""The fleet config (fleet.yaml): the hubs, clusters and communities, and the
        fleet's database (its `database_url`).""",
    )
    collect_interval = Float(
        3600.0,
        config=True,
        help="""Seconds between collections from the hubs; 0: never (collected by hand).""",
    )

    @cached_property
    def gauges(self) -> dict[str, Any]:
        """What an operator alerts on: a hub whose figures are stale (it stopped answering,
        or was never collected), how old each hub's figures are, collections by result, and
        each community with a budget: what it was attributed this month, and whether that
        is past its budget."""
        registry = self.metrics_registry
        return {
            "stale": Gauge("twoi2c_fleet_hub_stale", "1 when a hub's figures are stale", ["hub"], registry=registry),
            "age": Gauge(
                "twoi2c_fleet_hub_figures_age_seconds", "Seconds since a hub last answered in full", ["hub"],
                registry=registry,
            ),
            "spent": Gauge(
                "twoi2c_fleet_community_month_attributed_cost",
                "What a community's hubs were attributed this month so far (communities with a budget)",
                ["community"], registry=registry,
            ),
            "budget": Gauge(
                "twoi2c_fleet_community_month_budget", "A community's budget for a month", ["community"],
                registry=registry,
            ),
            "over": Gauge(
                "twoi2c_fleet_community_over_budget", "1 when a community's hubs passed its budget this month",
                ["community"], registry=registry,
            ),
            "collections": Counter(
                "twoi2c_fleet_hub_collections", "Hub collections, by result", ["result"], registry=registry
            ),
        }  # fmt: skip

    def update_metrics(self) -> None:
        now = int(time.time() * 1000)
        this_month = time.strftime("%Y-%m", time.gmtime(now / 1000))
        with self.open_db() as db:
            states = report.hub_states(db, self.fleet, now)
            spending = report.budgets(db, self.fleet, self.fleet_folder, this_month)
        for state in states:
            self.gauges["stale"].labels(state.hub).set(int(state.stale))
            if state.collected_ms is not None:
                self.gauges["age"].labels(state.hub).set((now - state.collected_ms) / 1000)
        for spent in spending:
            self.gauges["spent"].labels(spent.community).set(float(spent.attributed_cost))
            self.gauges["budget"].labels(spent.community).set(float(spent.budget))
            self.gauges["over"].labels(spent.community).set(int(spent.over))

    @cached_property
    def fleet(self) -> FleetConfig:
        return load_fleet(self.fleet_config)

    @property
    def fleet_folder(self) -> Path:
        """Where the fleet config's relative paths (bills) start."""
        return Path(self.fleet_config).resolve().parent

    @cached_property
    def engine(self) -> Engine:
        upgrade(self.fleet.fleet.database_url)
        return make_engine(self.fleet.fleet.database_url)

    def prepare(self) -> None:
        super().prepare()
        self.fleet  # noqa: B018 - a bad fleet config stops the service at start, saying why

    def routes(self) -> list[tuple]:
        return [
            ("", pages.OverviewPage),
            ("api/v1/active-users", handlers.ActiveUsersAPI),
            ("api/v1/recovery", handlers.RecoveryAPI),
            ("api/v1/cost", handlers.CostAPI),
            ("api/v1/hubs", handlers.HubsAPI),
            ("api/v1/statements", handlers.StatementsAPI),
            ("statements", pages.StatementsPage),
            (r"communities/([a-z0-9][a-z0-9_-]*)", pages.CommunityPage),
            (r"hubs/([a-z0-9][a-z0-9_-]*)", pages.HubPage),
        ]

    async def collect_all(self) -> None:
        results = await collect(self.fleet, self.fleet_folder, now_ms=int(time.time() * 1000))
        for result in results:
            (log.info if result.ok else log.warning)("%s", result.line())
            self.gauges["collections"].labels("ok" if result.ok else "failed").inc()

    def background(self) -> list[Awaitable[None]]:
        if not self.collect_interval:
            return []
        return [every(self.collect_interval, self.collect_all, failed="Collecting the fleet's figures failed")]

    def health_details(self) -> dict[str, Any]:
        return {"hubs": len(self.fleet.hubs), "collect_interval_seconds": self.collect_interval}


def main(argv: list[str] | None = None) -> int:
    return FleetService.main(argv)
