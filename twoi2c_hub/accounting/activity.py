"""Who did what: the sessions themselves (filtered, paged) and daily/weekly/monthly active users."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

from sqlalchemy import false, func, select
from sqlalchemy.orm import Session as DB

from .fleet import person_digest
from .models import DAY_MS, DailyUserUsage, ServerSession, SessionGroup, SessionUse
from .reports import iso
from .use import figures as use_figures


def sessions(
    db: DB,
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    username: str | None = None,
    profile: str | None = None,
    group: str | None = None,
    state: str | None = None,
    limit: int = 100,
    after_id: int | None = None,
) -> list[dict]:
    """Sessions overlapping the window, oldest first, `limit` at a time after `after_id`."""
    query = select(ServerSession).order_by(ServerSession.id).limit(limit)
    if after_id is not None:
        query = query.where(ServerSession.id > after_id)
    if end_ms is not None:
        query = query.where(ServerSession.started_ms < end_ms)
    if start_ms is not None:
        query = query.where((ServerSession.stopped_ms.is_(None)) | (ServerSession.stopped_ms > start_ms))
    if username is not None:
        query = query.where(ServerSession.username == username)
    if profile is not None:
        query = query.where(ServerSession.profile == profile)
    if group is not None:
        query = query.where(
            ServerSession.id.in_(select(SessionGroup.session_id).where(SessionGroup.group_name == group))
        )
    if state == "running":
        query = query.where(ServerSession.stopped_ms.is_(None))
    elif state == "stopped":
        query = query.where(ServerSession.stopped_ms.is_not(None))
    rows = db.scalars(query).all()
    groups = defaultdict(list)
    used = {}
    if rows:
        ids = [r.id for r in rows]
        used = {u.session_id: u for u in db.scalars(select(SessionUse).where(SessionUse.session_id.in_(ids)))}
        for session_id, name in db.execute(
            select(SessionGroup.session_id, SessionGroup.group_name).where(
                SessionGroup.session_id.in_([r.id for r in rows])
            )
        ):
            groups[session_id].append(name)
    return [
        {
            "id": r.id,
            "user": r.username,
            "server_name": r.server_name,
            "profile": r.profile,
            "choices": json.loads(r.choices or "{}"),
            "image": r.image,
            "cpu_guarantee": r.cpu_guarantee,
            "cpu_limit": r.cpu_limit,
            "mem_guarantee_bytes": r.mem_guarantee_bytes,
            "mem_limit_bytes": r.mem_limit_bytes,
            "gpu_count": r.gpu_count,
            "gpu_type": r.gpu_type,
            "instance_type": r.instance_type,
            "started": iso(r.started_ms),
            "stopped": iso(r.stopped_ms),
            "stop_reason": r.stop_reason,
            "source": r.source,
            "groups": sorted(groups[r.id]),
            "use": use_figures(used.get(r.id), r.started_ms, r.stopped_ms),
        }
        for r in rows
    ]


def people_by_day(db: DB, first_day: int, last_day: int, now_ms: int) -> dict[int, set[str]]:
    """The usernames active on each UTC day from `first_day` to `last_day` (epoch days,
    both included), for the days with someone: from the daily rollups for the days rolled
    up, and from the sessions not yet rolled up, each on every day it overlaps (a running
    one until `now_ms`; one that ended as it began, on its day)."""
    per_day: dict[int, set[str]] = defaultdict(set)
    for day, name in db.execute(
        select(DailyUserUsage.day, DailyUserUsage.username)
        .where(DailyUserUsage.day >= first_day, DailyUserUsage.day <= last_day)
        .distinct()
    ):
        per_day[day].add(name)
    stop = func.coalesce(ServerSession.stopped_ms, now_ms)
    for name, started, stopped in db.execute(
        select(ServerSession.username, ServerSession.started_ms, stop).where(
            ServerSession.rolled_up == false(),
            ServerSession.started_ms <= (last_day + 1) * DAY_MS,
            stop >= first_day * DAY_MS,
        )
    ):
        first, last = started // DAY_MS, max(started, stopped - 1) // DAY_MS
        for day in range(max(first, first_day), min(last, last_day) + 1):
            per_day[day].add(name)
    return dict(per_day)


def people_digests_by_day(db: DB, first_day: int, last_day: int, now_ms: int, secret: bytes) -> dict[str, list[str]]:
    """For the fleet: each day's people (`people_by_day`) as their keyed digests
    (`fleet.person_digest`), sorted, never a name; by date (2026-11-01), days with nobody
    left out."""
    per_day = people_by_day(db, first_day, last_day, now_ms)
    digests = {name: person_digest(secret, name) for name in set().union(*per_day.values())}
    return {iso(day * DAY_MS)[:10]: sorted(digests[name] for name in per_day[day]) for day in sorted(per_day)}


def active_users(db: DB, start_ms: int, end_ms: int, now_ms: int) -> list[dict]:
    """Daily, weekly (7 days ending that day) and monthly (30 days) active users, per day."""
    first_day, last_day = start_ms // DAY_MS, (end_ms - 1) // DAY_MS
    per_day = people_by_day(db, first_day - 29, last_day, now_ms)
    # sliding windows: each day's people enter once and leave once, whatever the range
    windows = {7: Counter(), 30: Counter()}
    result = []
    for day in range(first_day - 29, last_day + 1):
        for length, counts in windows.items():
            counts.update(per_day.get(day, ()))
            leaving = per_day.get(day - length, ())
            counts.subtract(leaving)
            for name in leaving:
                if counts[name] <= 0:
                    del counts[name]
        if day >= first_day:
            result.append(
                {
                    "date": iso(day * DAY_MS)[:10],
                    "daily": len(per_day.get(day, ())),
                    "weekly": len(windows[7]),
                    "monthly": len(windows[30]),
                }
            )
    return result
