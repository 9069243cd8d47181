"""Recording events, idempotently: the same start or stop told twice (by the spawner and
by the reconciliation loop, or again after a restart) is recorded once.

`record(db, events)` is the one way in, for one event or thousands: starts first (so a
stop can follow its start in the same batch), then group changes, then stops, each kind
in a few statements whatever the batch's size.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, case, insert, select, update
from sqlalchemy.orm import Session as DB

from .events import Event, GroupsChanged, ServerStart, ServerStarted, ServerStopped
from .models import GroupMembership, ServerSession, SessionGroup


@dataclass
class Recorded:
    """What a `record` call changed."""

    sessions_opened: int = 0
    memberships_changed: int = 0


def record(db: DB, events: Sequence[Event], *, source: str = "event", seen_ms: int | None = None) -> Recorded:
    """Record `events` in the transaction of `db` (the caller commits).

    `source` says who told: "event" (a spawner, exact) or "reconciled" (the loop that
    compares with the hub); `seen_ms` is when the loop saw those servers running.
    """
    result = Recorded()
    db.flush()  # what the caller changed first: sessions and stops are written below the ORM
    starts = [e.start for e in events if isinstance(e, ServerStarted)]
    result.sessions_opened = _record_starts(db.connection(), starts, source=source, seen_ms=seen_ms)
    changes = [e for e in events if isinstance(e, GroupsChanged)]
    for at_ms in sorted({c.at_ms for c in changes}):
        result.memberships_changed += _sync_memberships(
            db, {c.username: _groups_after(db, c) for c in changes if c.at_ms == at_ms}, at_ms
        )
    stops = [e for e in events if isinstance(e, ServerStopped)]
    if stops:
        _record_stops(db.connection(), stops)
    if starts or stops:
        db.expire_all()  # sessions loaded before now see what was written
    return result


def _groups_after(db: DB, change: GroupsChanged) -> set[str]:
    if change.groups is not None:
        return set(change.groups)
    return (groups_at(db, change.username, change.at_ms) | change.added) - change.removed


def _resources(start: ServerStart) -> dict:
    return dict(
        choices=json.dumps(start.choices, sort_keys=True),
        **{name: getattr(start, name) for name in ServerStart.RESOURCE_FIELDS},
    )


# Recording is the event intake's hot path: these statements are built once (SQLAlchemy
# caches their compiled form) and run as Core, with no ORM objects loaded or flushed.
_sessions = ServerSession.__table__
_EXISTING = select(
    _sessions.c.id, _sessions.c.username, _sessions.c.server_name, _sessions.c.started_ms, _sessions.c.source
).where(_sessions.c.started_ms.in_(bindparam("started", expanding=True)))
_OPEN = insert(_sessions).returning(_sessions.c.id, sort_by_parameter_order=True)
_SEEN = update(_sessions).where(_sessions.c.id == bindparam("session_id")).values(seen_ms=bindparam("seen"))
_EXACT = (
    update(_sessions)
    .where(_sessions.c.id == bindparam("session_id"))
    .values(source="event", **{name: bindparam(f"new_{name}") for name in ("choices", *ServerStart.RESOURCE_FIELDS)})
)
_GROUPS = insert(SessionGroup.__table__)
_OPEN_STARTED = (
    select(_sessions.c.started_ms)
    .where(
        _sessions.c.username == bindparam("who"),
        _sessions.c.server_name == bindparam("server"),
        _sessions.c.stopped_ms.is_(None),
    )
    .order_by(_sessions.c.started_ms.desc())
    .limit(1)
)
_STOPPED = case((_sessions.c.started_ms > bindparam("stop_at"), _sessions.c.started_ms), else_=bindparam("stop_at"))
_STOP = (
    update(_sessions)
    .where(
        _sessions.c.username == bindparam("who"),
        _sessions.c.server_name == bindparam("server"),
        _sessions.c.started_ms == bindparam("start_at"),
        _sessions.c.stopped_ms.is_(None)
        | ((_sessions.c.stop_reason == "reconciled") & (_sessions.c.rolled_up.is_(False))),
    )
    .values(stopped_ms=_STOPPED, duration_ms=_STOPPED - _sessions.c.started_ms, stop_reason=bindparam("why"))
)


def _record_starts(db: Connection, starts: list[ServerStart], *, source: str, seen_ms: int | None) -> int:
    """Open a session for every new start; returns how many were new."""
    if not starts:
        return 0
    wanted = {(s.username, s.server_name, s.started_ms): s for s in starts}
    existing = {
        (row.username, row.server_name, row.started_ms): row
        for row in db.execute(_EXISTING, {"started": sorted({k[2] for k in wanted})})
    }
    told = existing.keys() & wanted.keys()
    if seen_ms is not None and told:
        db.execute(_SEEN, [{"session_id": existing[key].id, "seen": seen_ms} for key in told])
    # the spawner knows the resources exactly: its figures replace inferred ones
    exact = [key for key in told if source == "event" and existing[key].source != "event"]
    if exact:
        db.execute(
            _EXACT,
            [
                {"session_id": existing[key].id, **{f"new_{k}": v for k, v in _resources(wanted[key]).items()}}
                for key in exact
            ],
        )
    new = [start for key, start in wanted.items() if key not in existing]
    if not new:
        return 0
    rows = db.execute(
        _OPEN,
        [
            dict(
                username=s.username,
                server_name=s.server_name,
                started_ms=s.started_ms,
                source=source,
                seen_ms=seen_ms,
                rolled_up=False,
                **_resources(s),
            )
            for s in new
        ],
    ).all()
    groups = [dict(session_id=row.id, group_name=g) for row, s in zip(rows, new) for g in sorted(set(s.groups))]
    if groups:
        db.execute(_GROUPS, groups)
    return len(new)


def _record_stops(db: Connection, stops: list[ServerStopped]) -> None:
    """Close the sessions the stops name, in one statement.

    A stop without its session's start closes that server's open session. A stop the
    reconciliation loop inferred is replaced by the spawner's exact one if that arrives
    later (and the session is not yet in the rollups)."""
    exact = []
    for stop in stops:
        started_ms = stop.started_ms
        if started_ms is None:
            started_ms = db.scalar(_OPEN_STARTED, {"who": stop.username, "server": stop.server_name})
            if started_ms is None:
                continue  # nothing open: a late duplicate
        exact.append(
            dict(
                who=stop.username,
                server=stop.server_name,
                start_at=started_ms,
                stop_at=stop.stopped_ms,
                why=stop.reason,
            )
        )
    if exact:
        db.execute(_STOP, exact)


def _sync_memberships(db: DB, groups_by_user: Mapping[str, Iterable[str]], at_ms: int) -> int:
    """Make each person's current memberships their groups, dating changes `at_ms`;
    returns how many people's groups changed."""
    current: dict[str, dict[str, GroupMembership]] = {}
    names = list(groups_by_user)
    for i in range(0, len(names), 500):
        for membership in db.scalars(
            select(GroupMembership).where(
                GroupMembership.until_ms.is_(None), GroupMembership.username.in_(names[i : i + 500])
            )
        ):
            current.setdefault(membership.username, {})[membership.group_name] = membership
    changed = 0
    for username, groups in groups_by_user.items():
        mine, groups = current.get(username, {}), set(groups)
        removed, added = set(mine) - groups, groups - set(mine)
        for name in removed:
            mine[name].until_ms = at_ms
        db.add_all(GroupMembership(username=username, group_name=g, since_ms=at_ms) for g in sorted(added))
        changed += bool(added or removed)
    db.flush()
    return changed


def close(session: ServerSession, stopped_ms: int, reason: str) -> None:
    """Close a session the reconciliation loop found gone."""
    session.stopped_ms = stopped_ms
    session.duration_ms = stopped_ms - session.started_ms
    session.stop_reason = reason


def open_sessions(db: DB) -> list[ServerSession]:
    return list(db.scalars(select(ServerSession).where(ServerSession.stopped_ms.is_(None))))


def groups_at(db: DB, username: str, at_ms: int) -> set[str]:
    """The groups `username` was in at `at_ms`, from the dated memberships."""
    return set(
        db.scalars(
            select(GroupMembership.group_name).where(
                GroupMembership.username == username,
                GroupMembership.since_ms <= at_ms,
                (GroupMembership.until_ms.is_(None)) | (GroupMembership.until_ms > at_ms),
            )
        )
    )


def mark_rolled_up(db: DB, session_ids: Iterable[int]) -> None:
    db.execute(update(ServerSession).where(ServerSession.id.in_(list(session_ids))).values(rolled_up=True))
