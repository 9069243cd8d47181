"""Running now (`admin/running`, for hub admins and community admins): every server the
accounting says is running, who runs what since when, how long since it was last active
(the hub's `last_activity`), its price per hour and what it has cost so far; a hub admin
may stop one from here (the service stops it through the hub API with its own token, as
the budget enforcer does, and the spawner records the stop)."""

from __future__ import annotations

import logging
import urllib.parse
from dataclasses import dataclass
from datetime import datetime

from tornado import web
from tornado.httpclient import HTTPClientError

from ...accounting.costs import CostBasis, SessionCoster
from ...accounting.figures import resources_of
from ...accounting.models import DAY_MS, to_ms
from ...accounting.opencost import iso
from ...accounting.recording import open_sessions
from .handlers import AdminPage
from .metrics import now_ms

log = logging.getLogger("twoi2c.cost")
ONLY_HUB_ADMINS = "Only the hub's admins may stop someone's server."


@dataclass
class RunningServer:
    username: str
    server_name: str
    profile: str | None
    started_ms: int
    hourly: float | None  # its price per hour now; None: no price covers it
    cost: float  # from its start to now

    @property
    def key(self) -> tuple[str, str]:
        return self.username, self.server_name


def running_servers(db, basis: CostBasis, now: int) -> list[RunningServer]:
    """Every session the accounting holds open, priced from its start to `now`, the
    longest-running first."""
    coster = SessionCoster(basis)
    found = []
    for session in open_sessions(db):
        resources = resources_of(session)
        cost = sum(
            row.compute_cost for _, row in coster.days(resources, session.started_ms, max(now, session.started_ms))
        )
        price = coster.hourly(resources, now // DAY_MS)
        found.append(
            RunningServer(
                session.username,
                session.server_name or "",
                session.profile,
                session.started_ms,
                None if price is None else sum(price),
                cost,
            )
        )
    return sorted(found, key=lambda s: (s.started_ms, s.username, s.server_name))


def stop_path(username: str, server_name: str) -> str:
    user = urllib.parse.quote(username, safe="")
    return (
        f"/users/{user}/servers/{urllib.parse.quote(server_name, safe='')}" if server_name else f"/users/{user}/server"
    )


class RunningPage(AdminPage):
    async def activity(self) -> dict[tuple[str, str], int | None] | None:
        """(person, server) -> when the hub last saw it active; None if the hub did not answer."""
        try:
            users = await self.service.enforcer.running()
        except (HTTPClientError, OSError) as e:
            log.warning("Cannot read the hub's running servers for the running-now page (%s)", e)
            return None
        seen = {}
        for user in users:
            for name, server in (user.get("servers") or {}).items():
                last = server.get("last_activity")
                seen[user["name"], name] = to_ms(datetime.fromisoformat(last.replace("Z", "+00:00"))) if last else None
        return seen

    @web.authenticated
    async def get(self) -> None:
        user = self.check_admin()
        now, service = now_ms(), self.service
        servers = await self.run_db(lambda db: running_servers(db, service.basis, now))
        seen = await self.activity()
        rows = []
        for s in servers:
            last = None if seen is None else seen.get(s.key)
            rows.append(
                {
                    "username": s.username,
                    "server_name": s.server_name,
                    "profile": s.profile,
                    "started": iso(s.started_ms),
                    "running_minutes": (now - s.started_ms) // 60_000,
                    "idle_minutes": None if last is None else max(0, now - last) // 60_000,
                    "hourly": s.hourly,
                    "cost": s.cost,
                    "known_to_hub": seen is not None and s.key in seen,
                }
            )
        self.render_page(
            "cost/running.html",
            rows=rows,
            total_hourly=sum(r["hourly"] or 0 for r in rows),
            total_cost=sum(r["cost"] for r in rows),
            hub_answered=seen is not None,
            may_stop=bool(user.get("admin")),
            only_hub_admins=ONLY_HUB_ADMINS,
            stopped=self.get_argument("stopped", None),
            currency=service.currency,
            now=iso(now),
            is_admin=True,
        )

    @web.authenticated
    async def post(self) -> None:
        user = self.check_admin()
        if not user.get("admin"):
            raise web.HTTPError(403, ONLY_HUB_ADMINS)
        username = self.param_text("username") or ""
        server_name = self.param_text("server_name") or ""
        now, service = now_ms(), self.service
        running = await self.run_db(lambda db: running_servers(db, service.basis, now))
        if (username, server_name) not in {s.key for s in running}:
            raise web.HTTPError(404, "That server is not running.")
        try:
            await service.enforcer.hub_api.request("DELETE", stop_path(username, server_name))
        except (HTTPClientError, OSError) as e:
            log.warning("%s could not stop %s's server %r: %s", user["name"], username, server_name, e)
            raise web.HTTPError(502, "The hub did not stop the server; try again in a moment.") from None
        log.info("%s stopped %s's server %r from the running-now page", user["name"], username, server_name)
        shown = f"{username}/{server_name}" if server_name else username
        self.redirect(f"{service.prefix}admin/running?{urllib.parse.urlencode({'stopped': shown})}")
