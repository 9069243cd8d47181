"""twoi2c-workshop: shared-password logins for an event, open only while it runs.

Extends JupyterHub's SharedPasswordAuthenticator (user password at least 8 characters,
admin password at least 32, both checked at start). Adds a validity window, so the
password expires without anyone having to change it; a group for attendees; rate
limiting of failed attempts (see `ratelimit.py`: per address, per name and address, and
a hub-wide budget; forwarding headers trusted only from configured proxies); passwords
compared as UTF-8 bytes after Unicode normalisation, so any characters work; and an
optional temporary-account mode that gives each visitor a fresh random username.
"""

from __future__ import annotations

import hmac
import secrets
import unicodedata
from datetime import UTC, datetime

from jupyterhub.authenticators.shared import SharedPasswordAuthenticator
from traitlets import Bool, Int, List, Unicode, validate

from .base import LoginRefused
from .ratelimit import FailureLimiter, client_address

MAX_PASSWORD_LENGTH = 1024


def _parse_time(value: str) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"'{value}' needs a time zone, e.g. {value}+00:00 or {value}Z")
    return moment


class WorkshopAuthenticator(SharedPasswordAuthenticator):
    """SharedPasswordAuthenticator for a workshop: a window, a group, rate limits."""

    opens = Unicode(
        "",
        config=True,
        help="When logins open, ISO 8601 with a time zone (e.g. 2026-12-01T09:00+01:00). Empty: already open.",
    )
    closes = Unicode(
        "",
        config=True,
        help="When logins close, ISO 8601 with a time zone. Empty: never.",
    )

    @validate("opens", "closes")
    def _valid_time(self, proposal):
        _parse_time(proposal.value)
        return proposal.value

    attendee_group = Unicode(
        "",
        config=True,
        help="Put everyone who logs in with the user password in this group (sets manage_groups).",
    )

    temporary_accounts = Bool(
        False,
        config=True,
        help="""Give each visitor who knows the password a fresh random username
        (`username_prefix` + 8 hex digits) instead of the name they type.""",
    )
    username_prefix = Unicode("guest-", config=True, help="Prefix of temporary usernames.")

    max_failures = Int(5, config=True, help="Failed logins allowed per address in `failure_window`.")
    failure_window = Int(300, config=True, help="Seconds over which failed logins are counted.")
    global_max_failures = Int(
        100,
        config=True,
        help="""Failed logins allowed hub-wide in `failure_window`: beyond it every login
        waits, however many addresses the guesses come from.""",
    )
    trusted_proxies = List(
        Unicode(),
        config=True,
        help="""Addresses or networks (e.g. 10.0.0.0/8) of proxies whose X-Forwarded-For or
        X-Real-Ip header names the client. Empty (the default): those headers are ignored
        and the peer's address is the client's.""",
    )

    @validate("trusted_proxies")
    def _valid_proxies(self, proposal):
        import ipaddress

        for network in proposal.value:
            ipaddress.ip_network(network, strict=False)
        return proposal.value

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.attendee_group:
            self.manage_groups = True
        if self.temporary_accounts and self.admin_users:
            raise ValueError("temporary_accounts gives random usernames: admin_users could never log in")
        opens, closes = _parse_time(self.opens), _parse_time(self.closes)
        if opens and closes and closes <= opens:
            raise ValueError(f"the workshop closes ({self.closes}) before it opens ({self.opens})")
        self.limiter = FailureLimiter(
            max_failures=self.max_failures,
            window=self.failure_window,
            global_max_failures=self.global_max_failures,
        )

    def window_problem(self, now: datetime | None = None) -> str | None:
        now = now or datetime.now(UTC)
        opens, closes = _parse_time(self.opens), _parse_time(self.closes)
        if opens and now < opens:
            return f"Logins to this workshop open at {opens.isoformat(timespec='minutes')}."
        if closes and now >= closes:
            return f"This workshop ended: logins closed at {closes.isoformat(timespec='minutes')}."
        return None

    def client(self, handler) -> str:
        if handler is None:
            return "-"
        request = handler.request
        # the connection's own peer: tornado's xheaders may have replaced remote_ip already
        peer = getattr(getattr(request, "connection", None), "context", None)
        peer = getattr(peer, "address", None)
        peer = peer[0] if isinstance(peer, tuple) else request.remote_ip
        return client_address(peer, request.headers if hasattr(request, "headers") else {}, self.trusted_proxies)

    async def authenticate(self, handler, data):
        problem = self.window_problem()
        if problem:
            self.log.warning("Workshop login refused: %s", problem)
            raise LoginRefused(problem)
        address = self.client(handler)
        typed = data.get("username")
        username = "" if self.temporary_accounts or not isinstance(typed, str) else self.normalize_username(typed)
        refusal = self.limiter.check(address, username)
        if refusal is not None:
            self.log.warning("Workshop login rate-limited (%s)", refusal.key)
            limited = LoginRefused(
                f"Too many failed logins. Please wait {refusal.retry_after} seconds and try again.",
                status_code=429,
            )
            limited.headers = {"Retry-After": str(refusal.retry_after)}
            raise limited

        result = self.check_password(username, data.get("password"))
        if result is None:
            self.limiter.failed(address, username)
            return None
        if self.temporary_accounts:
            result["name"] = self.username_prefix + secrets.token_hex(4)
        if self.attendee_group and not result.get("admin"):
            result["groups"] = [self.attendee_group]
        return result

    def check_password(self, username: str, password) -> dict | None:
        """The user model for a right password, None for anything else (malformed too)."""
        if not isinstance(password, str) or not (self.temporary_accounts or username):
            return None
        given = _as_bytes(password[:MAX_PASSWORD_LENGTH])
        if username in self.admin_users:
            if self.admin_password and hmac.compare_digest(given, _as_bytes(self.admin_password)):
                return {"name": username, "admin": True, "groups": []}
            return None
        if self.user_password and hmac.compare_digest(given, _as_bytes(self.user_password)):
            # anyone logging in with the attendees' password is never an admin
            return {"name": username, "admin": False, "groups": []}
        return None


def _as_bytes(password: str) -> bytes:
    """A password as bytes to compare: Unicode-normalised (NFC), so the same characters
    typed on another keyboard compare equal, and any character works."""
    return unicodedata.normalize("NFC", password).encode("utf-8", "surrogatepass")
