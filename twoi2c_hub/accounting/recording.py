"""Recording sessions and membership, idempotently: the same start or stop told twice (by
the spawner and by the reconciliation loop, or again after a restart) is recorded once."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import bindparam, case, insert, select, update
from sqlalchemy.orm import Session as DB

from .models import GroupMembership, ServerSession, SessionGroup


@dataclass
class ServerStart:
    """A server that started: who, when (the hub's start time), with what."""

    username: str
    server_name: str
    started_ms: int
    profile: str | None = None
    choices: dict = field(default_factory=dict)
    image: str | None = None
    cpu_guarantee: float | None = None
    cpu_limit: float | None = None
    mem_guarantee_bytes: int | None = None
    mem_limit_bytes: int | None = None
    gpu_count: int = 0
    gpu_type: str | None = None
    groups: list[str] = field(default_factory=list)

    RESOURCE_FIELDS = ("profile", "image", "cpu_guarantee", "cpu_limit", "mem_guarantee_bytes",
                       "mem_limit_bytes", "gpu_count", "gpu_type")

    @classmethod
    def from_summary(cls, username, server_name, started_ms, summary: dict, groups) -> "ServerStart":
        """From `ResolvedServer.summary()` (what the spawners annotate their servers with)."""
        return cls(
            username=username, server_name=server_name, started_ms=started_ms,
            profile=summary.get("profile"), choices=summary.get("choices") or {},
            image=summary.get("image"), cpu_guarantee=summary.get("cpu_guarantee"),
            cpu_limit=summary.get("cpu_limit"), mem_guarantee_bytes=summary.get("mem_guarantee"),
            mem_limit_bytes=summary.get("mem_limit"), gpu_count=summary.get("gpu_count") or 0,
            gpu_type=summary.get("gpu_type"), groups=sorted(groups),
        )


def find_session(db: DB, username: str, server_name: str, started_ms: int) -> ServerSession | None:
    return db.scalar(select(ServerSession).where(
        ServerSession.username == username,
        ServerSession.server_name == server_name,
        ServerSession.started_ms == started_ms,
    ))


def record_start(db: DB, start: ServerStart, *, source: str = "event", seen_ms: int | None = None
                 ) -> tuple[ServerSession, bool]:
    """The session for `start`, created if new. Returns (session, created)."""
    existing = find_session(db, start.username, start.server_name, start.started_ms)
    if existing is not None:
        if seen_ms is not None:
            existing.seen_ms = seen_ms
        if source == "event" and existing.source != "event":
            # the spawner knows the resources exactly: its figures replace inferred ones
            for name in ServerStart.RESOURCE_FIELDS:
                setattr(existing, name, getattr(start, name))
            existing.choices = json.dumps(start.choices, sort_keys=True)
            existing.source = "event"
        return existing, False
    session = ServerSession(
        username=start.username, server_name=start.server_name, started_ms=start.started_ms,
        choices=json.dumps(start.choices, sort_keys=True), source=source, seen_ms=seen_ms,
        **{name: getattr(start, name) for name in ServerStart.RESOURCE_FIELDS},
    )
    db.add(session)
    db.flush()
    db.add_all(SessionGroup(session_id=session.id, group_name=g) for g in sorted(set(start.groups)))
    return session, True


def record_stop(db: DB, username: str, server_name: str, stopped_ms: int, reason: str,
                *, started_ms: int | None = None) -> ServerSession | None:
    """Close the open session of this server (the one started at `started_ms`, if given).

    A stop the reconciliation loop inferred is replaced by the spawner's exact one if
    that arrives later (and the session is not yet in the rollups)."""
    query = select(ServerSession).where(
        ServerSession.username == username, ServerSession.server_name == server_name,
    )
    if started_ms is not None:
        query = query.where(ServerSession.started_ms == started_ms)
    else:
        query = query.where(ServerSession.stopped_ms.is_(None))
    session = db.scalars(query.order_by(ServerSession.started_ms.desc())).first()
    if session is None:
        return None
    if session.stopped_ms is not None and not (session.stop_reason == "reconciled" and not session.rolled_up):
        return session
    close(session, max(stopped_ms, session.started_ms), reason)
    return session


def close(session: ServerSession, stopped_ms: int, reason: str) -> None:
    session.stopped_ms = stopped_ms
    session.duration_ms = stopped_ms - session.started_ms
    session.stop_reason = reason


def open_sessions(db: DB) -> list[ServerSession]:
    return list(db.scalars(select(ServerSession).where(ServerSession.stopped_ms.is_(None))))


def sync_membership(db: DB, username: str, groups, now_ms: int) -> tuple[set[str], set[str]]:
    """Make `username`'s current memberships `groups`, dating changes `now_ms`.
    Returns (added, removed)."""
    current = {
        m.group_name: m for m in db.scalars(select(GroupMembership).where(
            GroupMembership.username == username, GroupMembership.until_ms.is_(None)))
    }
    groups = set(groups)
    added, removed = groups - set(current), set(current) - groups
    for name in removed:
        current[name].until_ms = now_ms
    db.add_all(GroupMembership(username=username, group_name=g, since_ms=now_ms) for g in sorted(added))
    return added, removed


def sync_all_memberships(db: DB, groups_by_user: dict[str, list[str]], now_ms: int) -> int:
    """sync_membership for many people at once (one query); returns how many changed."""
    current: dict[str, dict[str, GroupMembership]] = {}
    for membership in db.scalars(select(GroupMembership).where(
            GroupMembership.until_ms.is_(None), GroupMembership.username.in_(list(groups_by_user)))):
        current.setdefault(membership.username, {})[membership.group_name] = membership
    changed = 0
    for username, groups in groups_by_user.items():
        mine, groups = current.get(username, {}), set(groups)
        for name in set(mine) - groups:
            mine[name].until_ms = now_ms
        added = groups - set(mine)
        db.add_all(GroupMembership(username=username, group_name=g, since_ms=now_ms) for g in sorted(added))
        changed += bool(added or set(mine) - groups)
    return changed


def groups_at(db: DB, username: str, at_ms: int) -> set[str]:
    """The groups `username` was in at `at_ms`, from the dated memberships."""
    return set(db.scalars(select(GroupMembership.group_name).where(
        GroupMembership.username == username,
        GroupMembership.since_ms <= at_ms,
        (GroupMembership.until_ms.is_(None)) | (GroupMembership.until_ms > at_ms),
    )))


def mark_rolled_up(db: DB, session_ids) -> None:
    db.execute(update(ServerSession).where(ServerSession.id.in_(list(session_ids))).values(rolled_up=True))


def record_starts(db: DB, starts: list[ServerStart]) -> int:
    """record_start for many spawner events at once (a few statements, not a few per
    event); returns how many sessions were new."""
    if not starts:
        return 0
    keys = {(s.username, s.server_name, s.started_ms): s for s in starts}
    existing = {
        (row.username, row.server_name, row.started_ms)
        for row in db.execute(select(ServerSession.username, ServerSession.server_name, ServerSession.started_ms)
                              .where(ServerSession.started_ms.in_({k[2] for k in keys})))
    }
    for key in existing & set(keys):
        record_start(db, keys[key], source="event")  # fills in resources of a reconciled one
    new = [keys[k] for k in keys if k not in existing]
    if not new:
        return 0
    rows = db.execute(
        insert(ServerSession).returning(ServerSession.id, ServerSession.username, ServerSession.server_name,
                                        ServerSession.started_ms, sort_by_parameter_order=True),
        [dict(username=s.username, server_name=s.server_name, started_ms=s.started_ms,
              choices=json.dumps(s.choices, sort_keys=True), source="event", gpu_count=s.gpu_count or 0,
              rolled_up=False, **{n: getattr(s, n) for n in ServerStart.RESOURCE_FIELDS if n != "gpu_count"})
         for s in new],
    ).all()
    groups = [dict(session_id=row.id, group_name=g) for row, s in zip(rows, new) for g in sorted(set(s.groups))]
    if groups:
        db.execute(insert(SessionGroup), groups)
    return len(new)


def record_stops(db: DB, stops: list[dict]) -> None:
    """record_stop for many events that name their session's start, in one statement."""
    if not stops:
        return
    table = ServerSession.__table__
    stopped = case((table.c.started_ms > bindparam("stop_at"), table.c.started_ms), else_=bindparam("stop_at"))
    db.connection().execute(
        update(table)
        .where(table.c.username == bindparam("who"), table.c.server_name == bindparam("server"),
               table.c.started_ms == bindparam("start_at"),
               table.c.stopped_ms.is_(None)
               | ((table.c.stop_reason == "reconciled") & (table.c.rolled_up.is_(False))))
        .values(stopped_ms=stopped, duration_ms=stopped - table.c.started_ms, stop_reason=bindparam("why")),
        [dict(who=e["username"], server=e["server_name"], start_at=e["started_ms"],
              stop_at=e["stopped_ms"], why=e["reason"]) for e in stops],
    )
