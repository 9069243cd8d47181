"""The usage service's pages and API. Every request is checked: hub OAuth (or a hub API
token) and its scopes; a person reads only their own figures unless they are a hub admin
or hold `custom:usage:read-all` (the community-admin groups do)."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime, timedelta, timezone
from hmac import compare_digest

from jupyterhub.services.auth import HubOAuthenticated
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import text
from tornado import web

from ...accounting import reports
from ...accounting.models import DAY_MS, to_ms
from ...accounting.rollups import FIGURES, NO_GROUP
from .collector import now_ms

READ_ALL_SCOPE = "custom:usage:read-all"
MAX_STEPS = 400
MAX_WINDOW_DAYS = 3660


class BadRequest(web.HTTPError):
    def __init__(self, parameter: str, problem: str):
        super().__init__(400, f"{parameter}: {problem}")
        self.message = f"{parameter}: {problem}"


def _start_of_day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def parse_window(value: str, now: datetime) -> tuple[int, int]:
    """OpenCost's window forms: `7d`, `24h`, `today`, `yesterday`, `week`, `lastweek`,
    `month`, `lastmonth`, or `START,END` (RFC 3339 times or Unix seconds), UTC."""
    value = (value or "").strip()
    today = _start_of_day(now)
    named = {
        "today": (today, now), "yesterday": (today - timedelta(days=1), today),
        "week": (today - timedelta(days=today.weekday()), now),
        "lastweek": (today - timedelta(days=today.weekday() + 7), today - timedelta(days=today.weekday())),
        "month": (today.replace(day=1), now),
        "lastmonth": ((today.replace(day=1) - timedelta(days=1)).replace(day=1), today.replace(day=1)),
    }
    if value in named:
        start, end = named[value]
    elif m := re.fullmatch(r"(\d{1,5})([dh])", value):
        amount = int(m.group(1)) * (86400 if m.group(2) == "d" else 3600)
        start, end = now - timedelta(seconds=amount), now
    elif "," in value:
        parts = value.split(",")
        if len(parts) != 2:
            raise BadRequest("window", f"'{value}' has more than one comma")
        try:
            start, end = (_parse_moment(p.strip()) for p in parts)
        except ValueError:
            raise BadRequest("window", f"'{value}' is not START,END in RFC 3339 (2026-11-01T00:00:00Z) or Unix seconds")
    else:
        raise BadRequest("window", f"'{value}' is not a window; use e.g. 7d, 24h, today, month, lastmonth, "
                                   "or 2026-11-01T00:00:00Z,2026-11-08T00:00:00Z")
    if end <= start:
        raise BadRequest("window", "its end must be after its start")
    if end - start > timedelta(days=MAX_WINDOW_DAYS):
        raise BadRequest("window", f"at most {MAX_WINDOW_DAYS} days")
    return to_ms(start), to_ms(end)


def _parse_moment(value: str) -> datetime:
    if re.fullmatch(r"\d{1,12}(\.\d+)?", value):
        return datetime.fromtimestamp(float(value), tz=timezone.utc)
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("no time zone")
    return moment.astimezone(timezone.utc)


def csv_cell(value) -> str:
    """A cell a spreadsheet will not run: text starting with = + - @ (or a tab or return)
    is prefixed with an apostrophe."""
    if value is None:
        return ""
    text_value = value if isinstance(value, str) else json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    if isinstance(value, str) and text_value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text_value
    return text_value


def to_csv(rows: list[dict], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(_dotted(row, c)) for c in columns])
    return out.getvalue()


def _dotted(row: dict, column: str):
    value = row
    for part in column.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


class UsageHandler(HubOAuthenticated, web.RequestHandler):
    @property
    def service(self):
        return self.settings["usage_service"]

    def may_read_all(self, user: dict) -> bool:
        return bool(user.get("admin")) or READ_ALL_SCOPE in (user.get("scopes") or [])

    def write_error(self, status_code, **kwargs):
        exception = kwargs.get("exc_info", (None, None))[1]
        message = getattr(exception, "message", None) or getattr(exception, "log_message", None) or self._reason
        if self.request.path.startswith(self.service.prefix + "api/") or self.get_argument("format", "") == "csv":
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"status": status_code, "message": message}))
        else:
            self.finish(self.service.render("usage/error.html", self, status_code=status_code, message=message))


class APIHandler(UsageHandler):
    def get_login_url(self):
        # an API never redirects to a login page
        raise web.HTTPError(403, "Log in through the hub, or send a hub API token (Authorization: token ...)")

    def reader(self) -> dict:
        user = self.current_user
        if user is None:
            raise web.HTTPError(403, "Log in through the hub, or send a hub API token (Authorization: token ...)")
        return user

    def subject(self, user: dict) -> str | None:
        """Whose figures: None for everyone (allowed readers), else one username."""
        asked = self.get_argument("user", None)
        if self.may_read_all(user):
            return asked
        if asked is not None and asked != user["name"]:
            raise web.HTTPError(403, "You may read only your own usage.")
        return user["name"]

    def respond(self, rows: list[dict], columns: list[str], filename: str):
        fmt = self.get_argument("format", "json")
        if fmt == "csv":
            self.set_header("Content-Type", "text/csv; charset=utf-8")
            self.set_header("Content-Disposition", f'attachment; filename="{filename}.csv"')
            self.finish(to_csv(rows, columns))
        elif fmt == "json":
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"code": 200, "data": rows}))
        else:
            raise BadRequest("format", f"'{fmt}' is not json or csv")


ALLOCATION_COLUMNS = ["window.start", "window.end", "name", *FIGURES]


class AllocationAPI(APIHandler):
    def get(self):
        user = self.reader()
        start_ms, end_ms = parse_window(self.get_argument("window", "7d"), datetime.now(timezone.utc))
        aggregate = self.get_argument("aggregate", "user")
        if aggregate not in reports.AGGREGATES:
            raise BadRequest("aggregate", f"'{aggregate}' is not one of {', '.join(reports.AGGREGATES)}")
        step = self.get_argument("step", None) or None
        if step is not None and step not in (*reports.STEPS, "1mo"):
            raise BadRequest("step", f"'{step}' is not one of 1h, 1d, 1w, 1mo")
        if step is not None and step != "1mo" and (end_ms - start_ms) / reports.STEPS[step] > MAX_STEPS:
            raise BadRequest("step", f"{step} steps over this window make more than {MAX_STEPS}; use a longer step")
        subject = self.subject(user)
        with self.service.sessions() as db:
            rows = reports.allocation(db, start_ms, end_ms, aggregate, now_ms(), step=step, username=subject)
        for row in rows:
            if aggregate == "group" and row["name"] == NO_GROUP:
                row["name"] = "(no group)"
        self.respond(rows, ALLOCATION_COLUMNS, f"usage-by-{aggregate}")


SESSION_COLUMNS = ["id", "user", "server_name", "profile", "choices", "image", "cpu_guarantee", "cpu_limit",
                   "mem_guarantee_bytes", "mem_limit_bytes", "gpu_count", "gpu_type", "started", "stopped",
                   "stop_reason", "source", "groups"]


class SessionsAPI(APIHandler):
    def get(self):
        user = self.reader()
        window = self.get_argument("window", None)
        start_ms = end_ms = None
        if window:
            start_ms, end_ms = parse_window(window, datetime.now(timezone.utc))
        state = self.get_argument("state", None)
        if state not in (None, "running", "stopped"):
            raise BadRequest("state", f"'{state}' is not running or stopped")
        limit = self._int("limit", 100, 1, 1000)
        after = self._int("after", None, 0, None)
        with self.service.sessions() as db:
            rows = reports.sessions(
                db, start_ms=start_ms, end_ms=end_ms, username=self.subject(user),
                profile=self.get_argument("profile", None), group=self.get_argument("group", None),
                state=state, limit=limit, after_id=after,
            )
        if rows and len(rows) == limit:
            self.set_header("Link", f'<{self.request.path}?after={rows[-1]["id"]}&limit={limit}>; rel="next"')
        self.respond(rows, SESSION_COLUMNS, "sessions")

    def _int(self, name, default, low, high):
        value = self.get_argument(name, None)
        if value is None:
            return default
        if not re.fullmatch(r"\d{1,9}", value):
            raise BadRequest(name, f"'{value}' is not a whole number")
        number = int(value)
        if number < low or (high is not None and number > high):
            raise BadRequest(name, f"must be between {low} and {high}" if high else f"must be at least {low}")
        return number


class ActiveUsersAPI(APIHandler):
    def get(self):
        user = self.reader()
        if not self.may_read_all(user):
            raise web.HTTPError(403, "Active-user counts are for hub admins and the community admins.")
        start_ms, end_ms = parse_window(self.get_argument("window", "30d"), datetime.now(timezone.utc))
        if end_ms - start_ms > 400 * DAY_MS:
            raise BadRequest("window", "at most 400 days of active-user counts at once")
        with self.service.sessions() as db:
            rows = reports.active_users(db, start_ms, end_ms, now_ms())
        self.respond(rows, ["date", "daily", "weekly", "monthly"], "active-users")


class EventsAPI(web.RequestHandler):
    """Start and stop events from the spawners, authenticated by the token the hub's
    configure() shared with this service (not hub OAuth: the hub itself posts them)."""

    def check_xsrf_cookie(self):
        pass  # token-authenticated, never a browser form

    def write_error(self, status_code, **kwargs):
        exception = kwargs.get("exc_info", (None, None))[1]
        message = getattr(exception, "message", None) or getattr(exception, "log_message", None) or self._reason
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": status_code, "message": message}))

    async def post(self):
        service = self.settings["usage_service"]
        header = self.request.headers.get("Authorization", "")
        token = header[len("token "):] if header.startswith("token ") else ""
        if not service.events_token or not compare_digest(token.encode(), service.events_token.encode()):
            raise web.HTTPError(403, "Events need the service's events token.")
        try:
            body = json.loads(self.request.body)
        except ValueError:
            raise BadRequest("body", "not JSON")
        events = body if isinstance(body, list) else [body]
        for i, event in enumerate(events):
            if not isinstance(event, dict) or event.get("type") not in ("start", "stop", "groups"):
                raise BadRequest(f"events[{i}].type", "must be start, stop or groups")
            if not isinstance(event.get("username"), str):
                raise BadRequest(f"events[{i}].username", "is required")
        try:
            recorded = await service.collector.submit(events)
        except (KeyError, ValueError, TypeError) as e:
            service.metrics.errors.labels("events").inc()
            raise BadRequest("events", f"cannot be recorded: {e!r}")
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"recorded": recorded}))


class MetricsHandler(APIHandler):
    def get(self):
        user = self.reader()
        if not (self.may_read_all(user) or "read:metrics" in (user.get("scopes") or [])):
            raise web.HTTPError(403, "Metrics need read:metrics, or hub admin.")
        if self.service.collector.last_reconciled_ms is not None:
            self.service.metrics.lag.set((now_ms() - self.service.collector.last_reconciled_ms) / 1000)
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(self.service.metrics.registry))


class HealthHandler(web.RequestHandler):
    def get(self):
        service = self.settings["usage_service"]
        database = "ok"
        try:
            with service.sessions() as db:
                db.execute(text("SELECT 1"))
        except Exception as e:
            database = f"error: {type(e).__name__}"
        last = service.collector.last_reconciled_ms
        self.set_status(200 if database == "ok" else 503)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({
            "status": "ok" if database == "ok" else "error", "database": database,
            "last_reconciled": reports.iso(last), "reconcile_interval_seconds": service.collector.interval,
        }))


class StaticHandler(web.StaticFileHandler):
    """Chart library files, served from the installed plotly package (never a CDN)."""


# --- pages -------------------------------------------------------------------------------


def chart_series(rows: list[dict], figure: str, top: int = 8) -> dict:
    """Per-step series of `figure` for the `top` names with most usage, the rest as 'others'."""
    totals: dict[str, float] = {}
    for row in rows:
        totals[row["name"]] = totals.get(row["name"], 0) + row[figure]
    leaders = sorted(totals, key=lambda n: -totals[n])[:top]
    steps = sorted({row["window"]["start"] for row in rows})
    series = {name: dict.fromkeys(steps, 0.0) for name in leaders}
    others = dict.fromkeys(steps, 0.0)
    for row in rows:
        target = series[row["name"]] if row["name"] in series else others
        target[row["window"]["start"]] += row[figure]
    if any(others.values()):
        series["others"] = others
    return {"x": steps, "series": [{"name": n, "y": [round(v, 4) for v in values.values()]}
                                   for n, values in series.items()]}


class PageHandler(UsageHandler):
    def window_arguments(self, default_days: int = 30):
        now = datetime.now(timezone.utc)
        start = self.get_argument("start", None)
        end = self.get_argument("end", None)
        if start or end:
            try:
                start_at = datetime.fromisoformat(start).replace(tzinfo=timezone.utc)
                end_at = datetime.fromisoformat(end).replace(tzinfo=timezone.utc) + timedelta(days=1)
            except (TypeError, ValueError):
                raise BadRequest("start/end", "dates must be given as YYYY-MM-DD")
            window = f"{start_at.isoformat()},{end_at.isoformat()}"
        else:
            end_at = _start_of_day(now) + timedelta(days=1)
            start_at = end_at - timedelta(days=default_days)
            window = f"{start_at.isoformat()},{end_at.isoformat()}"
        start_ms, end_ms = parse_window(window, now)
        return start_ms, end_ms, start_at.date().isoformat(), (end_at - timedelta(days=1)).date().isoformat()


class UserPage(PageHandler):
    @web.authenticated
    def get(self):
        user = self.current_user
        start_ms, end_ms, start, end = self.window_arguments()
        steps = (end_ms - start_ms) // DAY_MS
        step = "1d" if steps <= MAX_STEPS else "1w"
        with self.service.sessions() as db:
            totals = reports.allocation(db, start_ms, end_ms, "profile", now_ms(), username=user["name"])
            daily = reports.allocation(db, start_ms, end_ms, "profile", now_ms(), step=step, username=user["name"])
            recent = reports.sessions(db, start_ms=start_ms, end_ms=end_ms, username=user["name"], limit=1000)
        self.finish(self.service.render(
            "usage/user.html", self, totals=totals, recent=list(reversed(recent))[:50], start=start, end=end,
            chart=chart_series(daily, "server_hours"), is_admin=self.may_read_all(user),
        ))


class AdminPage(PageHandler):
    @web.authenticated
    def get(self):
        user = self.current_user
        if not self.may_read_all(user):
            raise web.HTTPError(403, "This page is for hub admins and the community admins.")
        start_ms, end_ms, start, end = self.window_arguments()
        aggregate = self.get_argument("aggregate", "user")
        if aggregate not in reports.AGGREGATES:
            raise BadRequest("aggregate", f"'{aggregate}' is not one of {', '.join(reports.AGGREGATES)}")
        drill = self.get_argument("user", None)
        steps = (end_ms - start_ms) // DAY_MS
        step = "1d" if steps <= MAX_STEPS else "1w"
        with self.service.sessions() as db:
            totals = reports.allocation(db, start_ms, end_ms, aggregate, now_ms())
            series = reports.allocation(db, start_ms, end_ms, aggregate, now_ms(), step=step)
            active = reports.active_users(db, max(start_ms, end_ms - 400 * DAY_MS), end_ms, now_ms())
            drill_sessions = (reports.sessions(db, start_ms=start_ms, end_ms=end_ms, username=drill, limit=1000)
                              if drill else None)
        for row in totals:
            if aggregate == "group" and row["name"] == NO_GROUP:
                row["name"] = "(no group)"
        window = f"{reports.iso(start_ms)},{reports.iso(end_ms)}"
        self.finish(self.service.render(
            "usage/admin.html", self, totals=totals, aggregate=aggregate, start=start, end=end,
            chart=chart_series(series, "server_hours"), active=active, drill=drill,
            drill_sessions=drill_sessions, window=window, figures=FIGURES, is_admin=True,
        ))
