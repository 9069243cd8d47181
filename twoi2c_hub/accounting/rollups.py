"""Daily rollups of closed sessions, so reports over long windows stay fast.

A closed session adds its usage to one row per UTC day it ran (per user, per group, per
profile), and, if it was measured, its measured use (per user and profile, per user and
group: `use_rows`). Sessions are rolled up once, a little after they close,
so that a late exact stop from the spawner can still replace an inferred one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from sqlalchemy import false, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session as DB

from ..catalog import GiB
from .figures import FIGURES, SESSION_COLUMNS, UseRow, add, reserved, resources_of, used
from .models import (
    DAY_MS,
    DailyGroupUsage,
    DailyProfileUsage,
    DailyUserGroupUsage,
    DailyUserGroupUse,
    DailyUserProfileUsage,
    DailyUserProfileUse,
    DailyUserUsage,
    MonthlyUserUsage,
    ServerSession,
    SessionGroup,
    SessionUse,
    month_of,
)
from .recording import mark_rolled_up

NO_GROUP = ""  # sessions of people in no group


def day_parts(started_ms: int, stopped_ms: int) -> Iterator[tuple[int, int]]:
    """(day, milliseconds run that day) for every UTC day the interval touches."""
    day = started_ms // DAY_MS
    moment = started_ms
    while moment < stopped_ms:
        end = min((day + 1) * DAY_MS, stopped_ms)
        yield day, end - moment
        moment = end
        day += 1


def upsert_add(db: DB, table: type, keys: tuple[str, ...], totals: dict, figures: tuple[str, ...] = FIGURES) -> None:
    """Add `totals` (key -> values of `figures`) to the rollup rows, creating missing ones
    (one executemany)."""
    if not totals:
        return
    dialect = db.get_bind().dialect.name
    insert = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}[dialect]
    columns = table.__table__.c
    statement = insert(table.__table__)
    statement = statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={f: columns[f] + statement.excluded[f] for f in figures},
    )
    names = (*keys, *figures)
    db.connection().execute(statement, [dict(zip(names, (*key, *values))) for key, values in totals.items()])


# every rollup table and its key columns
ROLLUPS = {
    DailyUserUsage: ("day", "username"),
    DailyGroupUsage: ("day", "group_name"),
    DailyProfileUsage: ("day", "profile"),
    DailyUserProfileUsage: ("day", "username", "profile"),
    DailyUserGroupUsage: ("day", "username", "group_name"),
    MonthlyUserUsage: ("month", "username"),
}
# the daily rollup (table, name column) a report by each aggregate reads: everyone's, and
# one person's
READ_BY = {
    "user": (DailyUserUsage, DailyUserUsage.username),
    "group": (DailyGroupUsage, DailyGroupUsage.group_name),
    "profile": (DailyProfileUsage, DailyProfileUsage.profile),
}
READ_BY_PERSON = {
    "user": (DailyUserProfileUsage, DailyUserProfileUsage.username),
    "group": (DailyUserGroupUsage, DailyUserGroupUsage.group_name),
    "profile": (DailyUserProfileUsage, DailyUserProfileUsage.profile),
}


def _keys(day: int, username: str, profile: str, groups: list[str]) -> Iterator[tuple[type, tuple]]:
    """(rollup table, row key) of every row one session-day adds to."""
    yield DailyUserUsage, (day, username)
    yield MonthlyUserUsage, (month_of(day), username)
    yield DailyProfileUsage, (day, profile)
    yield DailyUserProfileUsage, (day, username, profile)
    for group in groups:
        yield DailyGroupUsage, (day, group)
        yield DailyUserGroupUsage, (day, username, group)


def closed_sessions(db: DB, rolled_up, cutoff_ms: int, batch: int) -> Iterator[list]:
    """Batches of the sessions closed by `cutoff_ms` that the `rolled_up` flag says are not
    in the rollups yet (SESSION_COLUMNS); the caller flags each batch before the next."""
    while True:
        rows = db.execute(
            select(*SESSION_COLUMNS)
            .where(rolled_up == false(), ServerSession.stopped_ms.is_not(None), ServerSession.stopped_ms <= cutoff_ms)
            .order_by(ServerSession.id)
            .limit(batch)
        ).all()
        if not rows:
            return
        yield rows


def groups_of(db: DB, session_ids: list[int]) -> dict[int, list[str]]:
    """session id -> the groups its person was in when it started."""
    groups: dict[int, list[str]] = defaultdict(list)
    for start in range(0, len(session_ids), 5000):
        chunk = session_ids[start : start + 5000]
        for session_id, group in db.execute(
            select(SessionGroup.session_id, SessionGroup.group_name).where(SessionGroup.session_id.in_(chunk))
        ):
            groups[session_id].append(group)
    return groups


# the figures of the rollups of measured use, and their tables and key columns
USE_FIGURES = UseRow._fields
USE_ROLLUPS = {
    DailyUserProfileUse: ("day", "username", "profile", "instance_type"),
    DailyUserGroupUse: ("day", "username", "group_name", "instance_type"),
}


def use_rows(db: DB, rows: list, groups: dict[int, list[str]]) -> dict[type, dict]:
    """The rollup rows of measured use that closed sessions (SESSION_COLUMNS) add: each
    measured session's figures spread evenly over its time (`accounting.use.efficiency`'s
    rule), each UTC day its share; it counts as a session on the day it started. By
    instance type too: what was reserved and not used is priced at its rates."""
    by_id = {r.id: r for r in rows}
    ids = list(by_id)
    totals = {table: defaultdict(lambda: [0] * len(USE_FIGURES)) for table in USE_ROLLUPS}
    for start in range(0, len(ids), 5000):
        measured = db.execute(
            select(SessionUse.session_id, SessionUse.measured_ms, SessionUse.cpu_core_ms, SessionUse.mem_byte_ms).where(
                SessionUse.session_id.in_(ids[start : start + 5000]), SessionUse.measured_ms > 0
            )
        )
        for session_id, measured_ms, cpu_core_ms, mem_byte_ms in measured:
            r = by_id[session_id]
            hourly = reserved(resources_of(r))
            span = max(r.stopped_ms - r.started_ms, 1)
            for day, ms in day_parts(r.started_ms, r.stopped_ms):
                share = ms / span
                figures = (
                    1 if day == r.started_ms // DAY_MS else 0,
                    measured_ms * share,
                    cpu_core_ms * share,
                    hourly.cpu * measured_ms * share,
                    mem_byte_ms * share,
                    hourly.memory_gib * GiB * measured_ms * share,
                )
                instance_type = r.instance_type or ""
                add(totals[DailyUserProfileUse][(day, r.username, r.profile or "", instance_type)], figures)
                for group in groups.get(session_id) or [NO_GROUP]:
                    add(totals[DailyUserGroupUse][(day, r.username, group, instance_type)], figures)
    return totals


def add_usage(db: DB, rows: list, groups: dict[int, list[str]]) -> None:
    """Add closed sessions' (SESSION_COLUMNS) usage to the usage rollups."""
    totals = {table: defaultdict(lambda: [0, 0.0, 0.0, 0.0, 0.0]) for table in ROLLUPS}
    for r in rows:
        hourly = reserved(resources_of(r))
        profile, session_groups = r.profile or "", groups.get(r.id) or [NO_GROUP]
        start_day = r.started_ms // DAY_MS
        # a session that ended as it began still counts, on its day
        parts = list(day_parts(r.started_ms, r.stopped_ms)) or [(start_day, 0)]
        for day, ms in parts:
            figures = used(hourly, ms, started=day == start_day)
            for table, key in _keys(day, r.username, profile, session_groups):
                add(totals[table][key], figures)
    for table, keys in ROLLUPS.items():
        upsert_add(db, table, keys, totals[table])


def roll_up(db: DB, now_ms: int, grace_ms: int = 0, batch: int = 20_000) -> int:
    """Add sessions closed before `now_ms - grace_ms` to the rollups; returns how many."""
    done = 0
    for rows in closed_sessions(db, ServerSession.rolled_up, now_ms - grace_ms, batch):
        ids = [r.id for r in rows]
        groups = groups_of(db, ids)
        # one after the other, each one's totals let go before the next's are made
        add_usage(db, rows, groups)
        for table, totals in use_rows(db, rows, groups).items():
            upsert_add(db, table, USE_ROLLUPS[table], totals, USE_FIGURES)
        mark_rolled_up(db, ids)
        db.commit()
        done += len(rows)
    return done
