"""The usage service's API (`api/v1/`): allocation in OpenCost's shape, sessions, active
users, each day's people as the fleet's keyed digests, and the spawners' event intake. A
person reads only their own figures unless they are a hub admin or hold the read-all scope
(the community-admin groups do)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from tornado import web

from ...accounting import activity, opencost, reports, sizing, use
from ...accounting.events import EventError
from ...accounting.models import DAY_MS
from ...accounting.posted import parse_events
from ...accounting.rollups import NO_GROUP
from ..framework import APIHandler, BadParameter, TokenPostHandler
from ..framework import params as parse
from ..framework.params import check_steps
from .intake import DatabaseUnavailable, now_ms


class AllocationAPI(APIHandler):
    async def get(self) -> None:
        user = self.reader()
        window = parse.window("window", self.get_argument("window", None), datetime.now(UTC), "7d")
        aggregate = self.param_choice("aggregate", opencost.AGGREGATES, "user")
        step = self.param_choice("step", opencost.STEP_CHOICES)
        check_steps(window, step)
        subject = self.subject(user)
        try:
            rows = await self.run_db(
                lambda db: reports.allocation(
                    db, *window, aggregate, now_ms(), step=step, username=subject, max_rows=opencost.MAX_ROWS
                )
            )
        except ValueError as e:
            raise BadParameter("step" if step else "window", str(e)) from None
        for row in rows:
            if aggregate == "group" and row["name"] == NO_GROUP:
                row["name"] = "(no group)"
        self.respond(
            opencost.allocation_sets(rows, opencost.USAGE_FIELDS),
            csv_rows=[opencost.opencost_row(r, opencost.USAGE_FIELDS) for r in rows],
            columns=opencost.columns(opencost.USAGE_FIELDS),
            filename=f"usage-by-{aggregate}",
        )


class EfficiencyAPI(APIHandler):
    """What the measured servers used against what they reserved, per user, group or
    profile over a window (`accounting.use.efficiency`); a person reads their own."""

    async def get(self) -> None:
        user = self.reader()
        window = parse.window("window", self.get_argument("window", None), datetime.now(UTC), "7d")
        aggregate = self.param_choice("aggregate", opencost.AGGREGATES, "user")
        subject = self.subject(user)
        rates, currency = self.service.efficiency_rates(window.end_ms)
        rows = await self.run_db(lambda db: use.efficiency(db, *window, aggregate, subject, rates))
        for row in rows:
            if aggregate == "group" and row["name"] == NO_GROUP:
                row["name"] = "(no group)"
        columns = [*use.EFFICIENCY_COLUMNS, *(("totalEfficiency", "costUnused") if rates else ())]
        self.respond(rows, columns=columns, filename=f"efficiency-by-{aggregate}", currency=currency or None)


class RightSizingAPI(APIHandler):
    """For each profile and memory reservation: how much its sessions used, and where most
    would have fitted a smaller one, a suggestion with what it would have saved (at the
    memory price in force at the window's end, where prices are per GiB-hour). For hub
    admins and the community admins."""

    async def get(self) -> None:
        user = self.reader()
        if not self.may_read_all(user):
            raise web.HTTPError(403, "Right-sizing advice is for hub admins and the community admins.")
        window = parse.window("window", self.get_argument("window", None), datetime.now(UTC), "lastmonth")
        price, currency = self.service.memory_price(window.end_ms)
        rows = await self.run_db(lambda db: sizing.right_sizing(db, *window, price, currency))
        self.respond(rows)


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
    # what it used (null: not measured)
    "cpu_core_usage_average",
    "ram_byte_usage_average",
    "ram_byte_usage_max",
    "measured_share",
]
MEASURED = {
    "cpu_core_usage_average": "cpuCoreUsageAverage",
    "ram_byte_usage_average": "ramByteUsageAverage",
    "ram_byte_usage_max": "ramByteUsageMax",
    "measured_share": "measuredShare",
}


class SessionsAPI(APIHandler):
    async def get(self) -> None:
        user = self.reader()
        window = parse.window("window", self.get_argument("window", None), datetime.now(UTC))
        state = self.param_choice("state", ("running", "stopped"))
        limit = self.param_int("limit", 100, 1, 1000)
        after = self.param_int("after", None, 0)
        group = self.param_text("group")
        # a group's lead reads its people's sessions (`group=` a group they lead)
        leads = group is not None and not self.may_read_all(user) and group in self.led_groups(user)
        query = dict(
            start_ms=window.start_ms if window else None,
            end_ms=window.end_ms if window else None,
            username=self.param_text("user") if leads else self.subject(user),
            profile=self.param_text("profile"),
            group=group,
            state=state,
            limit=limit,
            after_id=after,
        )
        rows = await self.run_db(lambda db: activity.sessions(db, **query))
        if rows and len(rows) == limit:
            self.set_header("Link", f'<{self.request.path}?after={rows[-1]["id"]}&limit={limit}>; rel="next"')
        flat = [{**row, **{column: (row["use"] or {}).get(name) for column, name in MEASURED.items()}} for row in rows]
        self.respond(rows, csv_rows=flat, columns=SESSION_COLUMNS, filename="sessions")


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


# the fleet's collector asks for a few days at a time, or a hub's history when it joins
MAX_DIGEST_DAYS = 400
DIGEST = "hmac-sha256-128"  # accounting.fleet.person_digest
NOT_IN_A_FLEET = (
    "This hub is not part of a fleet: set usage.fleet_secret_env in the community config to the "
    "environment variable holding the fleet secret, and restart the hub."
)


# the fleet's token needs this scope alone (and access to the service): it reads no name
DIGESTS_SCOPE = "custom:usage:digests"


class PeopleDigestsAPI(APIHandler):
    """For the fleet: the people active on each UTC day the window touches, as keyed
    digests of their names (never a name), for counting people once across hubs."""

    async def get(self) -> None:
        user = self.reader()
        if not (self.may_read_all(user) or DIGESTS_SCOPE in self.scopes(user)):
            raise web.HTTPError(
                403,
                f"The people's digests are for hub admins and holders of {DIGESTS_SCOPE} "
                f"(give it to the fleet's token) or {self.service.read_all_scope}.",
            )
        secret = self.service.fleet_secret
        if secret is None:
            raise web.HTTPError(404, NOT_IN_A_FLEET)
        window = parse.window(
            "window", self.get_argument("window", None), datetime.now(UTC), "30d", max_days=MAX_DIGEST_DAYS
        )
        first_day, last_day = window.start_ms // DAY_MS, (window.end_ms - 1) // DAY_MS
        if last_day - first_day + 1 > MAX_DIGEST_DAYS:
            raise BadParameter(
                "window", f"it touches {last_day - first_day + 1} UTC days; at most {MAX_DIGEST_DAYS} in one request"
            )
        days = await self.run_db(activity.people_digests_by_day, first_day, last_day, now_ms(), secret)
        self.respond(
            {"digest": DIGEST, "days": days},
            csv_rows=[{"date": day, "digest": digest} for day, digests in days.items() for digest in digests],
            columns=["date", "digest"],
            filename="people-digests",
        )


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
        if isinstance(body, list) and len(body) > MAX_EVENTS_PER_POST:
            raise BadParameter("body", f"at most {MAX_EVENTS_PER_POST} events in one post")
        try:
            events = parse_events(body, now_ms=now_ms())
        except EventError as e:
            self.service.metrics.errors.labels("events").inc()
            raise BadParameter(e.field, e.problem) from None
        try:
            recorded = await self.service.intake.submit(events)
        except DatabaseUnavailable as e:
            raise web.HTTPError(503, f"{e}; the hub's state is reconciled once it is back") from None
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"code": 200, "recorded": recorded}))


class RecentUseAPI(TokenPostHandler):
    """What a person's last measured sessions on each profile used (`accounting.use.
    recent_use`), for the spawn page beside each choice: asked by the spawners with the
    events token, on hubs without budgets (with budgets, the budget check answers it)."""

    what = "Asking for recent use"

    def expected_token(self) -> str:
        return self.service.events_token

    async def post(self) -> None:
        body = self.json_body()
        username = body.get("username") if isinstance(body, dict) else None
        if not isinstance(username, str) or not username or not username.isprintable():
            raise BadParameter("username", "is required: the person's name, printable text")
        username = parse.text("username", username)
        since = now_ms() - use.RECENT_USE_DAYS * DAY_MS
        self.respond(await self.run_db(lambda db: use.recent_use(db, username, since)))
