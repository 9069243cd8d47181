"""twoi2c-workshop: shared-password logins for an event, open only while it runs.

Extends JupyterHub's SharedPasswordAuthenticator (user password at least 8 characters,
admin password at least 32, both checked at start). Adds a validity window, so the
password expires without anyone having to change it; a group for attendees; rate
limiting of failed attempts per address and per username; and an optional
temporary-account mode that gives each visitor a fresh random username.
"""

from __future__ import annotations

import secrets
import time
from collections import defaultdict, deque
from datetime import UTC, datetime

from jupyterhub.authenticators.shared import SharedPasswordAuthenticator
from traitlets import Bool, Int, Unicode, validate

from .base import LoginRefused


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

    max_failures = Int(5, config=True, help="Failed logins allowed per address and per username in `failure_window`.")
    failure_window = Int(300, config=True, help="Seconds over which failed logins are counted.")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.attendee_group:
            self.manage_groups = True
        if self.temporary_accounts and self.admin_users:
            raise ValueError("temporary_accounts gives random usernames: admin_users could never log in")
        opens, closes = _parse_time(self.opens), _parse_time(self.closes)
        if opens and closes and closes <= opens:
            raise ValueError(f"the workshop closes ({self.closes}) before it opens ({self.opens})")
        self._failures: dict[str, deque] = defaultdict(deque)

    def window_problem(self, now: datetime | None = None) -> str | None:
        now = now or datetime.now(UTC)
        opens, closes = _parse_time(self.opens), _parse_time(self.closes)
        if opens and now < opens:
            return f"Logins to this workshop open at {opens.isoformat(timespec='minutes')}."
        if closes and now >= closes:
            return f"This workshop ended: logins closed at {closes.isoformat(timespec='minutes')}."
        return None

    def _recent_failures(self, key: str, now: float) -> deque:
        attempts = self._failures[key]
        while attempts and attempts[0] <= now - self.failure_window:
            attempts.popleft()
        return attempts

    async def authenticate(self, handler, data):
        problem = self.window_problem()
        if problem:
            self.log.warning("Workshop login refused: %s", problem)
            raise LoginRefused(problem)
        now = time.monotonic()
        address = handler.request.remote_ip if handler is not None else "-"
        username = "" if self.temporary_accounts else self.normalize_username(str(data.get("username", "")))
        keys = [f"address:{address}"] + ([f"user:{username}"] if username else [])
        for key in keys:
            attempts = self._recent_failures(key, now)
            if len(attempts) >= self.max_failures:
                wait = int(attempts[0] + self.failure_window - now) + 1
                self.log.warning("Workshop login rate-limited for %s", key)
                refusal = LoginRefused(
                    f"Too many failed logins. Please wait {wait} seconds and try again.",
                    status_code=429,
                )
                refusal.headers = {"Retry-After": str(wait)}
                raise refusal

        if self.temporary_accounts:
            data = {**data, "username": self.username_prefix + secrets.token_hex(4)}
        result = await super().authenticate(handler, data)
        if result is None:
            for key in keys:
                self._failures[key].append(now)
            return None
        if self.attendee_group and not result.get("admin"):
            result["groups"] = [self.attendee_group]
        return result
