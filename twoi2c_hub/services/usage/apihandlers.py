"""The usage service's API (`api/v1/`): allocation in OpenCost's shape, sessions, active
users, and the spawners' event intake. A person reads only their own figures unless they
are a hub admin or hold the read-all scope (the community-admin groups do)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from tornado import web

from ...accounting import activity, reports
from ...accounting.events import EventError, parse_event
from ...accounting.rollups import NO_GROUP
from ..framework import APIHandler, BadParameter, TokenPostHandler
from ..framework import params as parse
from ..framework.params import STEP_CHOICES, check_steps
from .intake import now_ms

# rows in one allocation answer (steps x names): more is a report nobody reads, and costly
MAX_ROWS = 20_000
# OpenCost's names for the figures of an allocation (ramByteHours in bytes, not GiB)
ALLOCATION_FIELDS = {
    "sessions": "sessions",
    "server_hours": "serverHours",
    "cpu_core_hours": "cpuCoreHours",
    "memory_gib_hours": "ramByteHours",
    "gpu_hours": "gpuHours",
}
ALLOCATION_COLUMNS = ["window.start", "window.end", "name", *ALLOCATION_FIELDS.values()]


def opencost_allocation(row: dict) -> dict:
    """One report row in OpenCost's allocation shape and field names."""
    allocation = {
        "name": row["name"],
        "window": row["window"],
        "start": row["window"]["start"],
        "end": row["window"]["end"],
    }
    for ours, theirs in ALLOCATION_FIELDS.items():
        value = row[ours]
        allocation[theirs] = round(value * reports.GiB, 1) if ours == "memory_gib_hours" else value
    return allocation


def allocation_sets(rows: list[dict]) -> list[dict]:
    """OpenCost's `data`: one object per step, mapping each name to its allocation."""
    sets: dict[str, dict] = {}
    for row in rows:
        step = sets.setdefault(row["window"]["start"], {})
        step[row["name"]] = opencost_allocation(row)
    return list(sets.values())


class AllocationAPI(APIHandler):
    async def get(self) -> None:
        user = self.reader()
        window = parse.window("window", self.get_argument("window", None), datetime.now(UTC), "7d")
        aggregate = self.param_choice("aggregate", reports.AGGREGATES, "user")
        step = self.param_choice("step", STEP_CHOICES)
        check_steps(window, step)
        subject = self.subject(user)
        try:
            rows = await self.run_db(
                lambda db: reports.allocation(
                    db, *window, aggregate, now_ms(), step=step, username=subject, max_rows=MAX_ROWS
                )
            )
        except ValueError as e:
            raise BadParameter("step" if step else "window", str(e)) from None
        for row in rows:
            if aggregate == "group" and row["name"] == NO_GROUP:
                row["name"] = "(no group)"
        self.respond(
            allocation_sets(rows),
            csv_rows=[opencost_allocation(r) for r in rows],
            columns=ALLOCATION_COLUMNS,
            filename=f"usage-by-{aggregate}",
        )


SESSION_COLUMNS = [
    "id",
    "user",
    "server_name",
    "profile",
    "choices",
    "image",
    "cpu_guarantee",
    "cpu_limit",
    "mem_guarantee_bytes",
    "mem_limit_bytes",
    "gpu_count",
    "gpu_type",
    "instance_type",
    "started",
    "stopped",
    "stop_reason",
    "source",
    "groups",
]


class SessionsAPI(APIHandler):
    async def get(self) -> None:
        user = self.reader()
        window = parse.window("window", self.get_argument("window", None), datetime.now(UTC))
        state = self.param_choice("state", ("running", "stopped"))
        limit = self.param_int("limit", 100, 1, 1000)
        after = self.param_int("after", None, 0)
        query = dict(
            start_ms=window.start_ms if window else None,
            end_ms=window.end_ms if window else None,
            username=self.subject(user),
            profile=self.param_text("profile"),
            group=self.param_text("group"),
            state=state,
            limit=limit,
            after_id=after,
        )
        rows = await self.run_db(lambda db: activity.sessions(db, **query))
        if rows and len(rows) == limit:
            self.set_header("Link", f'<{self.request.path}?after={rows[-1]["id"]}&limit={limit}>; rel="next"')
        self.respond(rows, columns=SESSION_COLUMNS, filename="sessions")


class ActiveUsersAPI(APIHandler):
    async def get(self) -> None:
        user = self.reader()
        if not self.may_read_all(user):
            raise web.HTTPError(403, "Active-user counts are for hub admins and the community admins.")
        window = parse.window("window", self.get_argument("window", None), datetime.now(UTC), "30d", max_days=400)
        rows = await self.service.shared_report(
            ("active-users", window),
            lambda: self.run_db(activity.active_users, window.start_ms, window.end_ms, now_ms()),
            ttl=10,
        )
        self.respond(rows, columns=["date", "daily", "weekly", "monthly"], filename="active-users")


# a spawner's event is a few hundred bytes; a batch of a few hundred fits
MAX_EVENTS_BODY_BYTES = 256 * 1024
MAX_EVENTS_PER_POST = 1000


class EventsAPI(TokenPostHandler):
    """Start, stop and group events from the spawners and the authenticator, with the
    events token configure() shared with this service; at most MAX_EVENTS_BODY_BYTES."""

    max_body_bytes = MAX_EVENTS_BODY_BYTES
    what = "Posting events"

    def expected_token(self) -> str:
        return self.service.events_token

    async def post(self) -> None:
        body = self.json_body()
        raw_events = body if isinstance(body, list) else [body]
        if len(raw_events) > MAX_EVENTS_PER_POST:
            raise BadParameter("body", f"at most {MAX_EVENTS_PER_POST} events in one post")
        now = now_ms()
        try:
            events = [parse_event(raw, f"events[{i}]", now_ms=now) for i, raw in enumerate(raw_events)]
        except EventError as e:
            self.service.metrics.errors.labels("events").inc()
            raise BadParameter(e.field, e.problem) from None
        recorded = await self.service.intake.submit(events)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"code": 200, "recorded": recorded}))
