"""Base handlers of a hub service: hub OAuth and scopes on every request, one JSON shape
for answers (`{"code": 200, "data": ...}`) and errors (`{"code": 4xx, "message": "...",
"parameter": "..."}`), pages in the hub's look, `/health` and `/metrics`."""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from hmac import compare_digest
from typing import TYPE_CHECKING, Any

from jupyterhub.services.auth import HubOAuthenticated
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from tornado import web

from ...accounting import opencost, windows
from . import params
from .charts import FIGURE_LABELS, UNITS_EXPLAINED

if TYPE_CHECKING:
    from .service import HubService

LOG_IN = "Log in through the hub, or send a hub API token (Authorization: token ...)"
METRICS_SCOPE = "read:metrics"
STATE_CHANGING = frozenset({"POST", "PUT", "DELETE", "PATCH"})
XSRF_NEEDED = (
    "A change sent with the hub's login cookie needs the XSRF token (the _xsrf field of the "
    "service's own form, or an X-XSRFToken header); programs send a hub API token "
    "(Authorization: token ...) instead."
)


def error_body(status: int, message: str, parameter: str | None = None) -> str:
    body: dict[str, Any] = {"code": status, "message": message}
    if parameter:
        body["parameter"] = parameter
    return json.dumps(body)


class ServiceHandler(HubOAuthenticated, web.RequestHandler):
    """Every request of a service: the hub's OAuth cookie or a hub API token."""

    @property
    def service(self) -> HubService:
        return self.settings["hub_service"]

    def set_default_headers(self) -> None:
        # as the hub's own pages: never framed by another site, types never sniffed
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", "frame-ancestors 'self'")
        self.set_header("Referrer-Policy", "same-origin")

    def scopes(self, user: dict) -> set[str]:
        return set(user.get("scopes") or [])

    # --- cross-site request forgery ----------------------------------------------------

    def check_xsrf_cookie(self) -> None:
        """A POST, PUT, DELETE or PATCH that the hub's OAuth cookie would authenticate needs
        the XSRF token as well, as JupyterHub's own APIs do: another site can make a
        browser send the cookie, never the token. A request with a valid hub API token
        needs none (no browser sends one by itself).

        Tornado asks this before every such request, before the user is known; hub OAuth
        asks it again before taking the cookie, and for cross-site reads (answered as the
        hub answers them)."""
        if self.request.method not in STATE_CHANGING:
            super().check_xsrf_cookie()
            return
        if self.authenticated_by_token():
            return
        try:
            self.hub_auth.check_xsrf_cookie(self)
        except web.HTTPError:
            raise web.HTTPError(403, XSRF_NEEDED) from None

    def authenticated_by_token(self) -> bool:
        """Whether a valid hub API token (header or ?token=) comes with the request; a
        cookie never counts. An invalid token does not count either: hub OAuth would then
        fall back to the cookie."""
        if getattr(self, "_token_authenticated", False):
            return True
        token = self.hub_auth.get_token(self, in_cookie=False)
        if not token:
            return False
        try:
            return self.hub_auth.user_for_token(token, session_id=self.hub_auth.get_session_id(self)) is not None
        except Exception:  # the hub unreachable, a malformed token: not authenticated by it
            return False

    def may_read_all(self, user: dict) -> bool:
        """Hub admins and holders of the service's read-all scope read everyone's figures."""
        return bool(user.get("admin")) or self.service.read_all_scope in self.scopes(user)

    def led_groups(self, user: dict) -> set[str]:
        """The groups whose figures `user` reads as their lead: the service's read-group
        scope filtered to each (`custom:cost:read-group!group=NAME`, the config's `group_leads`)."""
        scope = self.service.read_group_scope
        prefix = f"{scope}!group="
        return {s[len(prefix) :] for s in self.scopes(user) if scope and s.startswith(prefix)}

    def may_read_group(self, user: dict, group: str) -> bool:
        return self.may_read_all(user) or group in self.led_groups(user)

    # --- parameters --------------------------------------------------------------------

    def param_choice(self, name: str, allowed: Iterable[str], default: str | None = None) -> str | None:
        return params.choice(name, self.get_argument(name, None), allowed, default)

    def param_int(self, name: str, default: int | None, low: int, high: int | None = None) -> int | None:
        return params.integer(name, self.get_argument(name, None), default, low, high)

    def param_text(self, name: str, max_length: int = 255) -> str | None:
        return params.text(name, self.get_argument(name, None), max_length)

    limit_per_person = True  # see run_db

    # --- database work -----------------------------------------------------------------

    async def run_db(self, work: Callable[..., Any], *args: Any) -> Any:
        """`work(db, *args)` with a database session, in the service's pool (off the loop).

        One person has at most `max_reports_per_person` of these running at once; more
        are answered 429 with Retry-After, so nobody can take the whole pool. The hub's own
        posts (`TokenPostHandler`: spawn-time checks, events) are not a person's: a class
        starting at once sends many together, and each is small."""
        if not self.limit_per_person:
            return await self.service.run_db(work, *args)
        user = self.current_user
        who = (user or {}).get("name") or self.request.remote_ip
        running = self.service.reports_running
        if running.get(who, 0) >= self.service.max_reports_per_person:
            busy = web.HTTPError(
                429, "You have other reports still being prepared; wait for them, then try again in a few seconds."
            )
            busy.headers = {"Retry-After": "2"}
            raise busy
        running[who] = running.get(who, 0) + 1
        try:
            return await self.service.run_db(work, *args)
        finally:
            running[who] -= 1
            if not running[who]:
                del running[who]

    # --- errors ------------------------------------------------------------------------

    def wants_json(self) -> bool:
        return False

    def write_error(self, status_code: int, **kwargs) -> None:
        exception = kwargs.get("exc_info", (None, None))[1]
        message = getattr(exception, "message", None) or getattr(exception, "log_message", None) or self._reason
        for name, value in (getattr(exception, "headers", None) or {}).items():
            self.set_header(name, value)
        if self.wants_json():
            self.set_header("Content-Type", "application/json")
            self.finish(error_body(status_code, message, getattr(exception, "parameter", None)))
        else:
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish(
                self.service.pages.render(
                    self.service.error_template,
                    self.get_current_user_safely(),
                    self.xsrf_token.decode(),
                    status_code=status_code,
                    message=message,
                    is_admin=False,
                )
            )

    def get_current_user_safely(self) -> dict | None:
        try:
            return self.current_user
        except Exception:
            return None


class APIHandler(ServiceHandler):
    """JSON (or CSV) answers; never a redirect to a login page."""

    def wants_json(self) -> bool:
        return True

    def get_login_url(self) -> str:
        raise web.HTTPError(403, LOG_IN)

    def reader(self) -> dict:
        """The person or service asking; 403 without one."""
        user = self.current_user
        if user is None:
            raise web.HTTPError(403, LOG_IN)
        return user

    def subject(self, user: dict) -> str | None:
        """Whose figures: None for everyone (allowed readers), else one username."""
        asked = self.param_text("user")
        if self.may_read_all(user):
            return asked
        if asked is not None and asked != user["name"]:
            raise web.HTTPError(403, f"You may read only your own {self.service.what}.")
        return user["name"]

    def respond(
        self,
        data: Any,
        *,
        csv_rows: list[dict] | None = None,
        columns: list[str] = (),
        filename: str = "",
        **beside: Any,
    ) -> None:
        """`data` as `{"code": 200, "data": ..., **beside}`, or `csv_rows` as CSV with `format=csv`."""
        fmt = self.param_choice("format", ("json", "csv"), "json")
        if fmt == "csv":
            self.set_header("Content-Type", "text/csv; charset=utf-8")
            self.set_header("Content-Disposition", f'attachment; filename="{filename}.csv"')
            self.finish(to_csv(csv_rows if csv_rows is not None else data, list(columns)))
        else:
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"code": 200, "data": data, **beside}))


@web.stream_request_body
class TokenPostHandler(APIHandler):
    """A POST from the hub's side (spawners, the authenticator) authenticated by a token
    configure() shared with the service, not by hub OAuth.

    The token is checked before any of the body is read, and the body is capped at
    `max_body_bytes`: an unauthenticated or oversized post costs the service nothing.
    Subclasses name the token (`expected_token()`) and read `self.json_body()`."""

    max_body_bytes = 16 * 1024
    what = "This"
    limit_per_person = False  # the hub's posts, authenticated by the shared token

    def expected_token(self) -> str:
        raise NotImplementedError

    def get_current_user(self) -> None:
        return None  # the shared token, not a hub login, is checked below

    def check_xsrf_cookie(self) -> None:
        pass  # no cookie is taken here: only the shared token, checked in prepare()

    def prepare(self) -> None:
        if self.request.method != "POST":
            return
        header = self.request.headers.get("Authorization", "")
        token = header[len("token ") :] if header.startswith("token ") else ""
        expected = self.expected_token()
        if not expected or not compare_digest(token.encode(), expected.encode()):
            raise web.HTTPError(403, f"{self.what} needs the service's token.")
        declared = self.request.headers.get("Content-Length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            raise web.HTTPError(413, f"body: at most {self.max_body_bytes} bytes in one post")
        self.request.connection.set_max_body_size(self.max_body_bytes)
        self._chunks: list[bytes] = []

    def data_received(self, chunk: bytes) -> None:
        self._chunks.append(chunk)

    def json_body(self) -> Any:
        try:
            return json.loads(b"".join(self._chunks))
        except ValueError:
            raise params.BadParameter("body", "not JSON") from None


class PageHandler(ServiceHandler):
    """A page in the hub's look; errors are pages too."""

    def period(self, default_days: int = 30) -> tuple[windows.Window, str, str]:
        """The days asked for (`start`, `end`), as a window and as the dates to show in the
        form (see `params.period`); the last `default_days` days by default."""
        today = datetime.now(UTC).date()
        return params.period(self.get_argument("start", None), self.get_argument("end", None), today, default_days)

    @staticmethod
    def step(window: windows.Window) -> str:
        return opencost.auto_step(*window)

    @staticmethod
    def presets() -> list[dict[str, str]]:
        """Periods a page offers in one click (UTC dates, both included)."""
        today = datetime.now(UTC).date()
        first = today.replace(day=1)
        last_month_end = first - timedelta(days=1)
        return [
            {"label": "Last 7 days", "start": (today - timedelta(days=6)).isoformat(), "end": today.isoformat()},
            {"label": "Last 30 days", "start": (today - timedelta(days=29)).isoformat(), "end": today.isoformat()},
            {"label": "This month", "start": first.isoformat(), "end": today.isoformat()},
            {
                "label": "Last month",
                "start": last_month_end.replace(day=1).isoformat(),
                "end": last_month_end.isoformat(),
            },
        ]

    def render_page(self, name: str, **values: Any) -> None:
        values.setdefault("presets", self.presets())
        values.setdefault("figure_labels", FIGURE_LABELS)
        values.setdefault("units_explained", UNITS_EXPLAINED)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        user, xsrf = self.current_user, self.xsrf_token.decode()
        self.finish(self.service.pages.render(name, user, xsrf, path=self.request.path, **values))


class NotFoundHandler(PageHandler):
    """Any path the service does not have: a 404 page in the hub's look (JSON under api/)."""

    def wants_json(self) -> bool:
        return "/api/" in self.request.path

    def prepare(self) -> None:
        if not self.wants_json() and self.request.method == "GET" and self.get_current_user_safely() is None:
            # through the hub's login first, as any page: the 404 then keeps the user menu
            web.authenticated(lambda handler: None)(self)
            return
        raise web.HTTPError(404, "There is no such page here.")


class MetricsHandler(APIHandler):
    """Prometheus text: for hub admins, the read-all scope and `read:metrics`."""

    def get(self) -> None:
        user = self.reader()
        if not (self.may_read_all(user) or METRICS_SCOPE in self.scopes(user)):
            raise web.HTTPError(
                403, f"Metrics need the {METRICS_SCOPE} scope, {self.service.read_all_scope}, or hub admin."
            )
        self.service.update_metrics()
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(self.service.metrics_registry))


class HealthHandler(web.RequestHandler):
    """`{"status": "ok", ...}` (200) or `"error"` (503); needs no login."""

    async def get(self) -> None:
        health = await self.settings["hub_service"].health()
        self.set_status(200 if health["status"] == "ok" else 503)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(health))


# --- CSV ---------------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", " ")


def csv_cell(value: Any) -> str:
    """A cell a spreadsheet will not run: text that starts (after any spaces or line
    breaks, in any width) with = + - @ is prefixed with an apostrophe."""
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if not isinstance(value, str):
        return str(value)
    if unicodedata.normalize("NFKC", value).lstrip(" \t\r\n")[:1] in _FORMULA_START or value[:1] in _FORMULA_START:
        return "'" + value
    return value


def _dotted(row: dict, column: str) -> Any:
    value: Any = row
    for part in column.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def to_csv(rows: list[dict], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(_dotted(row, c)) for c in columns])
    return out.getvalue()
