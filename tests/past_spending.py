"""Spending in a test hub's past, written straight into its accounting database as
finished sessions (the spending of a real week would take a week)."""

import time

from twoi2c_hub.accounting.db import make_engine, session_maker
from twoi2c_hub.accounting.events import ServerStart, ServerStarted, ServerStopped
from twoi2c_hub.accounting.models import HOUR_MS
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
