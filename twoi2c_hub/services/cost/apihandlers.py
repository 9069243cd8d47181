"""The cost service's API (`api/v1/`): cost in OpenCost's allocation shape.

A person reads only their own costs unless they are a hub admin or hold
`custom:cost:read-all` (the community-admin groups do)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from ...accounting import opencost
from ...accounting.cost_reports import cost_allocation
from ...accounting.rollups import NO_GROUP
from ..framework import APIHandler
from ..framework import params as parse
from ..framework.params import check_steps
from .metrics import now_ms

# how long a report, once computed, answers the same request again
SHARED_SECONDS = 10


class CostAPI(APIHandler):
    async def get(self) -> None:
        user = self.reader()
        window = parse.window("window", self.get_argument("window", None), datetime.now(UTC), "7d")
        aggregate = self.param_choice("aggregate", opencost.AGGREGATES, "user")
        step = self.param_choice("step", opencost.STEP_CHOICES)
        fmt = self.param_choice("format", ("json", "csv"), "json")
        check_steps(window, step)
        subject = self.subject(user)
        basis = self.service.basis

        def build(db) -> tuple[list[dict], str]:
            """The rows and the JSON answer, both made in the worker thread: a report of
            thousands of rows keeps the event loop (and the budget checks) free."""
            rows = cost_allocation(db, basis, *window, aggregate, now_ms(), step=step, username=subject)
            for row in rows:
                if aggregate == "group" and row["name"] == NO_GROUP:
                    row["name"] = "(no group)"
            body = {
                "code": 200,
                "data": opencost.allocation_sets(rows, opencost.COST_FIELDS),
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
            csv_rows = [opencost.opencost_row(r, opencost.COST_FIELDS) for r in rows]
            columns = opencost.columns(opencost.COST_FIELDS)
            self.respond(None, csv_rows=csv_rows, columns=columns, filename=f"cost-by-{aggregate}")
        else:
            self.set_header("Content-Type", "application/json")
            self.finish(text)
