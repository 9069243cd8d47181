"""The cost service's API (`api/v1/`): cost in OpenCost's allocation shape.

A person reads only their own costs unless they are a hub admin or hold
`custom:cost:read-all` (the community-admin groups do)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from ...accounting import reports
from ...accounting.cost_reports import cost_allocation
from ...accounting.rollups import NO_GROUP
from ..framework import APIHandler
from ..framework import params as parse
from ..framework.params import STEP_CHOICES, check_steps
from .metrics import now_ms

MAX_ROWS = 20_000
# OpenCost's names for the figures of an allocation
COST_FIELDS = {
    "sessions": "sessions",
    "server_hours": "serverHours",
    "cpu_core_hours": "cpuCoreHours",
    "memory_gib_hours": "ramByteHours",
    "gpu_hours": "gpuHours",
    "cpu_cost": "cpuCost",
    "ram_cost": "ramCost",
    "gpu_cost": "gpuCost",
    "pv_cost": "pvCost",
    "total_cost": "totalCost",
    "unpriced_hours": "unpricedHours",
}
COST_COLUMNS = ["window.start", "window.end", "name", *COST_FIELDS.values()]


def opencost_cost(row: dict) -> dict:
    allocation = {"name": row["name"], "window": row["window"], "start": row["window"]["start"]}
    allocation["end"] = row["window"]["end"]
    for ours, theirs in COST_FIELDS.items():
        value = row[ours]
        allocation[theirs] = round(value * reports.GiB, 1) if ours == "memory_gib_hours" else value
    return allocation


# how long a report, once computed, answers the same request again
SHARED_SECONDS = 10


class CostAPI(APIHandler):
    async def get(self) -> None:
        user = self.reader()
        window = parse.window("window", self.get_argument("window", None), datetime.now(UTC), "7d")
        aggregate = self.param_choice("aggregate", reports.AGGREGATES, "user")
        step = self.param_choice("step", STEP_CHOICES)
        fmt = self.param_choice("format", ("json", "csv"), "json")
        check_steps(window, step)
        subject = self.subject(user)
        basis = self.service.basis

        def build(db) -> tuple[list[dict], str]:
            """The rows and the JSON answer, both made in the worker thread: a report of
            thousands of rows keeps the event loop (and the budget checks) free."""
            rows = cost_allocation(db, basis, *window, aggregate, now_ms(), step=step, username=subject)
            sets: dict[str, dict] = {}
            for row in rows:
                if aggregate == "group" and row["name"] == NO_GROUP:
                    row["name"] = "(no group)"
                sets.setdefault(row["window"]["start"], {})[row["name"]] = opencost_cost(row)
            body = {
                "code": 200,
                "data": list(sets.values()),
                "currency": basis.pricing.currency,
                # how a person in several groups is counted, when the rows are groups
                "groupRule": basis.group_rule if aggregate == "group" else None,
            }
            return rows, json.dumps(body)

        # the same report asked again within seconds (a reloaded page, several admins) is
        # computed once
        rows, text = await self.service.shared_report(
            ("cost", window, aggregate, step, subject), lambda: self.run_db(build), ttl=SHARED_SECONDS
        )
        if fmt == "csv":
            self.respond(None, csv_rows=[opencost_cost(r) for r in rows], columns=COST_COLUMNS,
                         filename=f"cost-by-{aggregate}")  # fmt: skip
        else:
            self.set_header("Content-Type", "application/json")
            self.finish(text)
