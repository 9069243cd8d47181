"""Reconciliation: the recorded sessions compared with the hub's own servers and groups.

The spawners' events are exact but can be lost (the spawn path never waits for this service, and the
service may be down). Every `interval` seconds the loop reads the hub's servers and groups:
it opens sessions it missed (with the hub's own start time, so nothing is counted twice),
closes sessions whose server is gone (at the hub's last activity of that server, or when it
was first seen gone), keeps dated group membership, and rolls closed sessions up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.orm import sessionmaker
from tornado.httpclient import HTTPClientError

from ... import catalog
from ...accounting.events import GroupsChanged, ServerStart, ServerStarted
from ...accounting.models import ServerSession, to_ms
from ...accounting.recording import close, open_sessions, record
from ...accounting.rollups import roll_up
from ...catalog.summary import MAX_NAME_LENGTH
from ..framework.hubapi import HubAPI
from .intake import now_ms
from .metrics import UsageMetrics

log = logging.getLogger("twoi2c.usage")


def parse_hub_time(value: str | None) -> int | None:
    """Epoch ms from the hub's ISO 8601 times ('2026-11-26T07:00:00.123456Z')."""
    if value is None:
        return None
    return to_ms(datetime.fromisoformat(str(value).replace("Z", "+00:00")))


class Reconciler:
    """Compares the recorded sessions and memberships with the hub's, every `interval` s."""

    def __init__(
        self,
        open_db: sessionmaker,
        *,
        hub_api: HubAPI,
        catalog: list[dict],
        interval: float,
        metrics: UsageMetrics,
        held_events_written: Callable[[], bool] | None = None,
    ):
        self.open_db = open_db
        self.hub_api = hub_api
        self.catalog = catalog
        self.interval = interval
        self.metrics = metrics
        # writes the events the intake holds, True when none is left (EventIntake.write_held)
        self.held_events_written = held_events_written
        self.last_reconciled_ms: int | None = None

    async def hub_users(self) -> list[dict]:
        """Every user with their servers (stopped ones too) and groups, page by page."""
        return [user async for user in self.hub_api.paged("/users", {"include_stopped_servers": 1})]

    def server_start(self, user: dict, server_name: str, server: dict, started_ms: int) -> ServerStart:
        """What a server found running was started with, resolved from its user options."""
        groups = user.get("groups") or []
        try:
            resolved = catalog.resolve(self.catalog, groups, server.get("user_options") or {})
            summary = resolved.summary()
        except (catalog.ProfileError, TypeError, ValueError):
            profile = (server.get("user_options") or {}).get("profile")
            known = isinstance(profile, str) and len(profile) <= MAX_NAME_LENGTH
            summary = catalog.ServerSummary(profile=profile if known else None)
        return ServerStart.from_summary(user["name"], server_name, started_ms, summary, groups)

    async def reconcile(self) -> dict[str, int]:
        if self.held_events_written is not None and not self.held_events_written():
            # the spawners' events wait to be written (the database was down): a pass now
            # would close their servers at a guess that their exact stops could not replace
            log.info("Events are still held; reconciling once they are written")
            return {}
        try:
            users = await self.hub_users()
        except (HTTPClientError, OSError) as e:
            self.metrics.errors.labels("hub-api").inc()
            log.warning("Cannot read the hub's servers (%s); will try again", e)
            return {}
        return await asyncio.to_thread(self.record_hub_state, users, now_ms())

    def record_hub_state(self, users: list[dict], now: int) -> dict[str, int]:
        """Make the records agree with the hub's users, servers and groups as of `now`:
        open the sessions of running servers, close those whose server is gone, date
        group changes, and roll closed sessions up."""
        running: dict[tuple[str, str], int] = {}
        last_activity: dict[tuple[str, str], int | None] = {}
        starts = []
        for user in users:
            for server_name, server in (user.get("servers") or {}).items():
                key = (user["name"], server_name)
                started = parse_hub_time(server.get("started"))
                last_activity[key] = parse_hub_time(server.get("last_activity"))
                if started is None or server.get("stopped"):
                    continue
                running[key] = started
                if server.get("pending") == "spawn":
                    # still starting: it may yet be refused (a budget) or fail, and once it
                    # runs its start event or the next pass records it; a session the
                    # start event opened already stays open (benchmarks/faults.py found a
                    # refused start recorded as a 53 ms session, seen mid-refusal)
                    continue
                starts.append(ServerStarted(self.server_start(user, server_name, server, started)))
        memberships = [GroupsChanged(u["name"], now, groups=frozenset(u.get("groups") or [])) for u in users]
        closed = 0
        with self.open_db() as db:
            opened = record(db, [*memberships, *starts], source="reconciled", seen_ms=now).sessions_opened
            if opened:
                log.info("Reconciled: %d running servers had no start event", opened)
            for session in open_sessions(db):
                key = (session.username, session.server_name)
                if running.get(key) == session.started_ms:
                    continue
                close(session, self.stopped_at(session, running.get(key), last_activity.get(key), now), "reconciled")
                closed += 1
                log.info("Reconciled: %s's server %r stopped without a stop event", *key)
            db.commit()
            roll_up(db, now, grace_ms=int(2 * self.interval * 1000))
            if db.get_bind().dialect.name == "sqlite":
                db.execute(text("PRAGMA optimize"))  # keep the query planner's statistics current
            self.metrics.running.set(
                db.scalar(select(func.count()).select_from(ServerSession).where(ServerSession.stopped_ms.is_(None)))
            )
            self.metrics.recorded.set(db.scalar(select(func.count()).select_from(ServerSession)))
        self.metrics.corrections.labels("opened").inc(opened)
        self.metrics.corrections.labels("closed").inc(closed)
        self.last_reconciled_ms = now
        return {"opened": opened, "closed": closed}

    @staticmethod
    def stopped_at(session: ServerSession, later_start: int | None, activity: int | None, now: int) -> int:
        """When a server found gone stopped: no later than a later start of the same
        server, else at its last activity, else when it was last seen running."""
        if later_start is not None and later_start > session.started_ms:
            stopped = later_start
        elif activity is not None and activity >= session.started_ms:
            stopped = activity
        else:
            stopped = session.seen_ms or now
        return min(max(stopped, session.started_ms), now)
