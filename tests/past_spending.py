"""Spending in a test hub's past, written straight into its accounting database as
finished sessions (the spending of a real week would take a week)."""

import time
from datetime import UTC, datetime
from datetime import time as clock_time

from twoi2c_hub.accounting.db import make_engine, session_maker
from twoi2c_hub.accounting.events import ServerStart, ServerStarted, ServerStopped
from twoi2c_hub.accounting.models import DAY_MS, HOUR_MS, ServerSession
from twoi2c_hub.accounting.recording import record

CPU_CORE_HOUR = 0.031611  # the demo's price


def spend(hub, username, money, ended_ms_ago=HOUR_MS, groups=("students",)):
    """Record a past session of `username` that cost `money` (one hour of CPU cores)."""
    end = int(time.time() * 1000) - ended_ms_ago
    cpu = money / CPU_CORE_HOUR
    start = ServerStart(username, "", end - HOUR_MS, profile="cpu", cpu_guarantee=cpu, groups=list(groups))
    engine = make_engine(hub.database_url)
    with session_maker(engine)() as db:
        record(db, [ServerStarted(start)])
        record(db, [ServerStopped(username, "", end, "user", start.started_ms)])
        db.commit()
    engine.dispose()


def past_session(database_url, username, start_ms, hours, groups, profile="cpu", cpus=1.0, memory_gib=2.0):
    """Record a finished session of `username` in the accounting database at
    `database_url`: `cpus` cores and `memory_gib` guaranteed for `hours` from `start_ms`."""
    start = ServerStart(username, "", start_ms, profile=profile, cpu_guarantee=cpus,
                        mem_guarantee_bytes=int(memory_gib * 2**30), groups=list(groups))  # fmt: skip
    engine = make_engine(database_url)
    with session_maker(engine)() as db:
        record(db, [ServerStarted(start)])
        record(db, [ServerStopped(username, "", start_ms + int(hours * HOUR_MS), "user", start_ms)])
        db.commit()
    engine.dispose()


# a day of sessions for the report tables: (who, groups, profile, hours, cores, memory GiB);
# ben is in two groups, cat in none, bob (a demo user, who can log in) used two profiles
A_DAYS_SESSIONS = [
    ("ann", ["students"], "cpu", 2.0, 2.0, 4.0),
    ("ben", ["students", "researchers"], "cpu", 3.0, 4.0, 8.0),
    ("cat", [], "big", 1.0, 1.0, 2.0),
    ("bob", ["students"], "cpu", 1.5, 1.0, 2.0),
    ("bob", ["students"], "big", 0.5, 3.0, 6.0),
]


def record_a_day(database_url, day) -> None:
    """A_DAYS_SESSIONS on `day` (a date), one after the other from 08:00 UTC."""
    start = int(datetime.combine(day, clock_time(8), UTC).timestamp() * 1000)
    for i, (who, groups, profile, hours, cores, memory_gib) in enumerate(A_DAYS_SESSIONS):
        past_session(database_url, who, start + i * 3 * HOUR_MS, hours, groups, profile, cores, memory_gib)


def in_rollups(database_url, day, cost=True) -> bool:
    """The sessions of `day` are all in the usage rollups (and with `cost`, the cost
    rollups): a report read now does not race a service rolling them up (a report reads
    the rollups and the sessions not yet in them in separate statements)."""
    from sqlalchemy import false, func, or_, select

    start = int(datetime.combine(day, clock_time(0), UTC).timestamp() * 1000)
    waiting = ServerSession.rolled_up == false()
    if cost:
        waiting = or_(waiting, ServerSession.cost_rolled_up == false())
    engine = make_engine(database_url)
    with session_maker(engine)() as db:
        count = db.scalar(
            select(func.count()).where(
                ServerSession.started_ms >= start, ServerSession.started_ms < start + DAY_MS, waiting
            )
        )
    engine.dispose()
    return count == 0
