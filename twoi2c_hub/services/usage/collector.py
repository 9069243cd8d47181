"""Collecting sessions: events from the spawners, and a reconciliation loop against the hub.

Events are exact but can be lost (the spawn path never waits for this service, and the
service may be down). Every `interval` seconds the loop reads the hub's servers and groups:
it opens sessions it missed (with the hub's own start time, so nothing is counted twice),
closes sessions whose server is gone (at the hub's last activity of that server, or when it
was first seen gone), keeps dated group membership, and rolls closed sessions up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import func, select, text
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from ...accounting.models import ServerSession, to_ms
from ...accounting.recording import (
    ServerStart,
    close,
    groups_at,
    open_sessions,
    record_start,
    record_starts,
    record_stop,
    record_stops,
    sync_all_memberships,
    sync_membership,
)
from ...accounting.rollups import roll_up
from ... import catalog

log = logging.getLogger("twoi2c.usage")

STOP_REASONS = {"user", "admin", "culler", "crash", "hub", "reconciled"}


def now_ms() -> int:
    return int(time.time() * 1000)


def parse_time(value) -> int | None:
    """Epoch ms from the hub's ISO 8601 times ('2026-11-26T07:00:00.123456Z') or numbers."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value)
    return to_ms(datetime.fromisoformat(str(value).replace("Z", "+00:00")))


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.running = Gauge("twoi2c_usage_running_sessions", "Sessions open now", registry=self.registry)
        self.recorded = Gauge("twoi2c_usage_recorded_sessions", "Sessions in the database", registry=self.registry)
        self.events = Counter("twoi2c_usage_events", "Events received from the spawners", ["type"],
                              registry=self.registry)
        self.corrections = Counter("twoi2c_usage_reconcile_corrections",
                                   "Sessions the reconciliation loop opened or closed itself", ["kind"],
                                   registry=self.registry)
        self.lag = Gauge("twoi2c_usage_reconcile_lag_seconds", "Seconds since the last complete reconciliation",
                         registry=self.registry)
        self.errors = Counter("twoi2c_usage_errors", "Errors, by where they happened", ["where"],
                              registry=self.registry)


class Collector:
    def __init__(self, sessions_factory, *, hub_api_url: str, api_token: str, catalog: list[dict],
                 interval: float, page_size: int = 200, request_timeout: float = 20, metrics: Metrics):
        self.sessions_factory = sessions_factory
        self.hub_api_url = hub_api_url.rstrip("/")
        self.api_token = api_token
        self.catalog = catalog
        self.interval = interval
        self.page_size = page_size
        self.request_timeout = request_timeout
        self.metrics = metrics
        self.last_reconciled_ms: int | None = None
        self._waiting: list[tuple[list[dict], asyncio.Future]] = []
        self.commit_delay = 0.002  # seconds

    # --- events ------------------------------------------------------------------------

    async def submit(self, events: list[dict]) -> int:
        """Record events, answering once they are committed. Requests that arrive while
        others wait share one transaction (group commit), so many spawners posting at
        once cost one write, not one each."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((events, future))
        if len(self._waiting) == 1:
            # a few milliseconds' wait lets the requests already on their way join in
            asyncio.get_running_loop().call_later(self.commit_delay, self._commit_waiting)
        return await future

    def _commit_waiting(self) -> None:
        batch, self._waiting = self._waiting, []
        try:
            self.ingest([event for events, _ in batch for event in events])
        except Exception:
            # one bad request must not fail the others: record each request on its own
            for events, future in batch:
                try:
                    future.set_result(self.ingest(events))
                except Exception as e:
                    future.set_exception(e)
        else:
            for events, future in batch:
                future.set_result(len(events))

    def ingest(self, events: list[dict]) -> int:
        """Record spawner events ({"type": "start"|"stop"|"groups", ...}); all or nothing.
        Starts are recorded before stops, so a stop can follow its start in one batch."""
        starts, stops = [], []
        with self.sessions_factory() as db:
            for event in events:
                kind = event["type"]
                if kind == "start":
                    starts.append(ServerStart.from_summary(
                        event["username"], event.get("server_name") or "", parse_time(event["started"]),
                        event.get("server") or {}, event.get("groups") or [],
                    ))
                elif kind == "stop":
                    stops.append(event)
                elif kind == "groups":
                    at = parse_time(event.get("at")) or now_ms()
                    if "groups" in event:
                        groups = set(event["groups"] or [])
                    else:  # a change: what was added and removed
                        groups = (groups_at(db, event["username"], at) | set(event.get("added") or [])) - set(
                            event.get("removed") or [])
                    sync_membership(db, event["username"], groups, at)
                self.metrics.events.labels(kind).inc()
            record_starts(db, starts)
            exact = []
            for event in stops:
                server_name, reason = event.get("server_name") or "", event.get("reason", "user")
                started = parse_time(event.get("started"))
                if started is None:
                    record_stop(db, event["username"], server_name, parse_time(event["stopped"]), reason)
                else:
                    exact.append({"username": event["username"], "server_name": server_name, "started_ms": started,
                                  "stopped_ms": parse_time(event["stopped"]), "reason": reason})
            record_stops(db, exact)
            db.commit()
        return len(events)

    # --- reconciliation ----------------------------------------------------------------

    async def hub_users(self) -> list[dict]:
        """Every user with their servers (stopped ones too) and groups, page by page."""
        client = AsyncHTTPClient()
        users, offset = [], 0
        while True:
            request = HTTPRequest(
                f"{self.hub_api_url}/users?include_stopped_servers=1&offset={offset}&limit={self.page_size}",
                headers={"Authorization": f"token {self.api_token}",
                         "Accept": "application/jupyterhub-pagination+json"},
                request_timeout=self.request_timeout,
            )
            response = await client.fetch(request)
            body = json.loads(response.body)
            items = body["items"] if isinstance(body, dict) else body
            users.extend(items)
            following = (body.get("_pagination") or {}).get("next") if isinstance(body, dict) else None
            if not following:
                return users
            offset = following["offset"]

    def server_start(self, user: dict, server_name: str, server: dict, started_ms: int) -> ServerStart:
        """What a server found running was started with, resolved from its user options."""
        groups = user.get("groups") or []
        try:
            resolved = catalog.resolve(self.catalog, groups, server.get("user_options") or {})
            summary = resolved.summary()
        except catalog.ProfileError:
            summary = {"profile": (server.get("user_options") or {}).get("profile")}
        return ServerStart.from_summary(user["name"], server_name, started_ms, summary, groups)

    async def reconcile(self) -> dict[str, int]:
        try:
            users = await self.hub_users()
        except (HTTPClientError, OSError) as e:
            self.metrics.errors.labels("hub-api").inc()
            log.warning("Cannot read the hub's servers (%s); will try again", e)
            return {}
        return self.apply(users, now_ms())

    def apply(self, users: list[dict], now: int) -> dict[str, int]:
        opened = closed = 0
        running: dict[tuple[str, str], int] = {}
        last_activity: dict[tuple[str, str], int | None] = {}
        with self.sessions_factory() as db:
            for i in range(0, len(users), 500):
                sync_all_memberships(db, {u["name"]: u.get("groups") or [] for u in users[i:i + 500]}, now)
            for user in users:
                for server_name, server in (user.get("servers") or {}).items():
                    key = (user["name"], server_name)
                    started = parse_time(server.get("started"))
                    last_activity[key] = parse_time(server.get("last_activity"))
                    if started is None or server.get("stopped"):
                        continue
                    running[key] = started
                    _, created = record_start(db, self.server_start(user, server_name, server, started),
                                              source="reconciled", seen_ms=now)
                    if created:
                        opened += 1
                        log.info("Reconciled: %s's server %r was running without a start event", *key)
            for session in open_sessions(db):
                key = (session.username, session.server_name)
                if running.get(key) == session.started_ms:
                    continue
                # gone, or replaced by a later start: it stopped no later than that start
                later_start = running.get(key)
                activity = last_activity.get(key)
                if later_start is not None and later_start > session.started_ms:
                    stopped = later_start
                elif activity is not None and activity >= session.started_ms:
                    stopped = activity
                else:
                    stopped = session.seen_ms or now
                close(session, min(max(stopped, session.started_ms), now), "reconciled")
                closed += 1
                log.info("Reconciled: %s's server %r stopped without a stop event", *key)
            db.commit()
            roll_up(db, now, grace_ms=int(2 * self.interval * 1000))
            if db.get_bind().dialect.name == "sqlite":
                db.execute(text("PRAGMA optimize"))  # keep the query planner's statistics current
            self.metrics.running.set(db.scalar(select(func.count()).select_from(ServerSession)
                                               .where(ServerSession.stopped_ms.is_(None))))
            self.metrics.recorded.set(db.scalar(select(func.count()).select_from(ServerSession)))
        self.metrics.corrections.labels("opened").inc(opened)
        self.metrics.corrections.labels("closed").inc(closed)
        self.last_reconciled_ms = now
        return {"opened": opened, "closed": closed}
