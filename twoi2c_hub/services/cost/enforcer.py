"""Budgets over their `stop` threshold: running servers stopped after a grace period.

Every rollup interval the cost service reads which people have servers running (the hub
API, every page of its list), and for each whose budgets say `stop`, records a notice
(once per budget, person and period: its time starts the grace period, and
`api/v1/budgets` shows when the stop comes). Once the grace period has passed, the
service stops their servers through the hub API; the spawner records the stop with the
reason `budget`.
"""

from __future__ import annotations

import logging
import urllib.parse

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from tornado.httpclient import HTTPClientError

from ...accounting.models import BudgetNotice
from ..framework.hubapi import HubAPI

log = logging.getLogger("twoi2c.cost")


class Enforcer:
    def __init__(self, service, hub_api: HubAPI):
        self.service = service
        self.hub_api = hub_api

    @property
    def needed(self) -> bool:
        return any(t.action == "stop" for b in self.service.budgets for t in b.thresholds)

    async def running(self) -> list[dict]:
        """The people with a server running (or starting or stopping), every page of them;
        a person listed on two pages (the list moved between them) once."""
        users = {}
        async for user in self.hub_api.paged("/users", {"state": "active"}):
            users[user["name"]] = user
        return list(users.values())

    async def enforce(self, now: int) -> list[str]:
        """Stop the servers of people past a stop threshold whose grace has passed; the names."""
        if not self.needed:
            return []
        try:
            users = await self.running()
        except (HTTPClientError, OSError) as e:
            log.warning("Cannot read the hub's running servers (%s); will try again", e)
            return []
        stopped = []
        for user in users:
            due = await self.service.run_db(lambda db, u=user: self.due(db, u["name"], u.get("groups") or [], now))
            if not due:
                continue
            for server_name in user.get("servers") or {}:
                path = f"/users/{urllib.parse.quote(user['name'], safe='')}/server"
                if server_name:
                    path = (
                        f"/users/{urllib.parse.quote(user['name'], safe='')}/servers/{urllib.parse.quote(server_name)}"
                    )
                try:
                    await self.hub_api.request("DELETE", path)
                except (HTTPClientError, OSError) as e:
                    log.warning("Could not stop %s's server %r over budget: %s", user["name"], server_name, e)
                    continue
                log.info("Stopped %s's server %r: over budget", user["name"], server_name)
                stopped.append(user["name"])
        return stopped

    def due(self, db, username: str, groups, now: int) -> bool:
        """Whether this person's servers are to be stopped now (noting the stop the first
        time their budgets say so)."""
        decision = self.service.decide(db, username, groups, now)
        s = decision.decisive
        if decision.action != "stop" or s is None:
            # no longer over (a top-up, an extension, spending aged out): a later stop
            # gives its grace period again
            noted = (BudgetNotice.kind == "stop") & BudgetNotice.subject.in_([username, *groups])
            if db.scalar(select(BudgetNotice.id).where(noted).limit(1)) is not None:
                db.execute(delete(BudgetNotice).where(noted))
                db.commit()
            return False
        notice = self.notice(db, s, now)
        return now - notice.at_ms >= s.grace_seconds * 1000

    def stop_at(self, db, s, now: int) -> int:
        """When the servers of the person `s` (a status past its stop threshold) stop."""
        return self.notice(db, s, now).at_ms + int(s.grace_seconds * 1000)

    def notice(self, db, s, now: int) -> BudgetNotice:
        key = dict(budget=s.budget.name, subject=s.subject, period_start_ms=s.period_start_ms, kind="stop")
        if s.budget.rolling_days is not None:
            key["period_start_ms"] = 0  # a rolling window has no fixed start: one notice until it is lifted
        found = db.scalar(select(BudgetNotice).filter_by(**key))
        if found is None:
            found = BudgetNotice(**key, at_ms=now)
            db.add(found)
            try:
                db.commit()
            except IntegrityError:  # noted at the same moment by another loop
                db.rollback()
                found = db.scalar(select(BudgetNotice).filter_by(**key))
        return found
