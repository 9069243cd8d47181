"""Posting events to the usage service, in the background.

Used by the spawners (server start and stop) and by the authenticators' group-change
hook. Nothing on the spawn or login path waits for the usage service: a post that fails
is logged, and the service's reconciliation with the hub records what it missed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from datetime import UTC
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.ioloop import IOLoop

log = logging.getLogger("twoi2c.usage-client")

# each event loop's clients, by purpose (see `http_client`)
_CLIENTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def http_client(purpose: str, max_clients: int = 100) -> AsyncHTTPClient:
    """An HTTP client of its own for `purpose` ("usage", "budget"), on this event loop.

    Tornado's shared client sends at most 10 requests at once for the whole hub. Events
    posted to a usage service that does not answer (stopped, not dead) took all 10 for
    their 5 s timeouts, and the spawn-time budget checks queued behind them and timed out:
    people whose budget was used up got servers (benchmarks/faults.py, the usage-stop
    round). Each purpose now waits only on its own service."""
    clients = _CLIENTS.setdefault(IOLoop.current(), {})
    if purpose not in clients:
        clients[purpose] = AsyncHTTPClient(force_instance=True, max_clients=max_clients)
    return clients[purpose]


def hub_url(url: str) -> str:
    """`url` with `{base_url}` replaced by the running hub's base_url (`/` outside a hub).

    configure() writes the services' addresses with the placeholder: the hub's base_url
    may be set after configure() in jupyterhub_config.py (or derived from bind_url), and
    is only known for certain once the hub runs."""
    if "{base_url}" not in url:
        return url
    from jupyterhub.app import JupyterHub

    base_url = JupyterHub.instance().base_url if JupyterHub.initialized() else "/"
    return url.replace("{base_url}", base_url)


class UsageEventPoster:
    """Sends events to the usage service's `api/v1/events` with its events token."""

    # tasks still sending: held here, or the event loop (which keeps only weak
    # references) may collect a task before it runs
    _sending: set[asyncio.Task] = set()

    def __init__(self, url: str, token: str, timeout: float = 5):
        self.url = url
        self.token = token
        self.timeout = timeout

    def post(self, event: dict[str, Any]) -> asyncio.Task | None:
        """Send `event` in the background; returns the task (None if no URL is set)."""
        if not self.url:
            return None
        task = asyncio.ensure_future(self.send(event))
        UsageEventPoster._sending.add(task)
        task.add_done_callback(UsageEventPoster._sending.discard)
        return task

    async def send(self, event: dict[str, Any]) -> bool:
        request = HTTPRequest(
            hub_url(self.url),
            method="POST",
            body=json.dumps(event),
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
            request_timeout=self.timeout,
            connect_timeout=self.timeout,
        )
        try:
            await http_client("usage").fetch(request)
        except Exception as e:
            log.warning(
                "Usage event %s for %s not delivered (%s); reconciliation will catch up",
                event.get("type"),
                event.get("username"),
                e,
            )
            return False
        return True

    def __call__(self, authenticator, username: str, added, removed) -> None:
        """An authenticator's `group_change_hook`: tell the service what changed, now."""
        from datetime import datetime

        self.post(
            {
                "type": "groups",
                "username": username,
                "added": sorted(added),
                "removed": sorted(removed),
                "at": datetime.now(UTC).isoformat(),
            }
        )
