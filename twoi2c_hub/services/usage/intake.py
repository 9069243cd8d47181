"""Event intake: the spawners' events, parsed once and recorded in shared transactions."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import sessionmaker

from ...accounting.events import Event, ServerStarted, ServerStopped
from ...accounting.recording import record
from .metrics import UsageMetrics

log = logging.getLogger("twoi2c.usage")


def now_ms() -> int:
    return int(time.time() * 1000)


def _kind(event: Event) -> str:
    return "start" if isinstance(event, ServerStarted) else "stop" if isinstance(event, ServerStopped) else "groups"


class EventIntake:
    """Records batches of typed events, answering once they are committed.

    Posts share one transaction (group commit): many spawners posting at once cost one
    write, not one each. The commit waits until the event loop has made QUIET_PASSES passes
    with no new post (each pass reads what has reached the sockets, and a post needs a few
    passes from its bytes to `submit`), at most MAX_PASSES: a lone post waits some tens of
    microseconds, never a timer. Committing at the very next pass made batches of 4-5
    events with 16 spawners posting at once, and intake ran at 900-1,300 events/s; waiting
    for a quiet loop makes them 13-16 and intake 2,000-2,100 (benchmarks/usage_report.py)."""

    QUIET_PASSES = 6
    MAX_PASSES = 64
    # events held while the database cannot take them (a full disk, PostgreSQL restarting);
    # beyond this many, posts are refused (503) and the reconciliation catches up instead.
    # A parsed start event is about 700 bytes: 20,000 keep the service within its 200 MB
    HELD_AT_MOST = 20_000
    RETRY_SECONDS = 2.0
    RETRY_BATCH = 1000

    def __init__(self, open_db: sessionmaker, metrics: UsageMetrics):
        self.open_db = open_db
        self.metrics = metrics
        self._waiting: list[tuple[Sequence[Event], asyncio.Future]] = []
        # accepted, in order, not yet written: the database was unavailable
        self.held: list[Event] = []
        self._retrying: asyncio.Handle | None = None
        self._written_some = False

    async def submit(self, events: Sequence[Event]) -> int:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((events, future))
        if len(self._waiting) == 1:
            asyncio.get_running_loop().call_soon(self._commit_when_quiet, 0, 0, 1)
        return await future

    def _commit_when_quiet(self, passes: int, quiet: int, seen: int) -> None:
        """Called once a pass of the loop: commit after QUIET_PASSES with no new post."""
        quiet = 0 if len(self._waiting) > seen else quiet + 1
        if quiet < self.QUIET_PASSES and passes < self.MAX_PASSES:
            asyncio.get_running_loop().call_soon(self._commit_when_quiet, passes + 1, quiet, len(self._waiting))
        else:
            self._commit_waiting()

    def _commit_waiting(self) -> None:
        batch, self._waiting = self._waiting, []
        if self.held:  # written after what is held, in the order they came
            self._hold(batch)
            return
        try:
            self.record([event for events, _ in batch for event in events])
        except Exception as e:
            if not unavailable(e):
                self._one_by_one(batch)
                return
            log.warning("The database cannot take events now (%s); holding them, retrying", e)
            self._hold(batch)
        else:
            for events, future in batch:
                future.set_result(len(events))

    def _one_by_one(self, batch: list[tuple[Sequence[Event], asyncio.Future]]) -> None:
        """One bad request must not fail the others: each request on its own, in order
        (once one is held, the rest are held behind it)."""
        for events, future in batch:
            if self.held:
                self._hold([(events, future)])
                continue
            try:
                future.set_result(self.record(events))
            except Exception as e:
                if unavailable(e):
                    self._hold([(events, future)])
                else:
                    future.set_exception(e)

    def _hold(self, batch: list[tuple[Sequence[Event], asyncio.Future]]) -> None:
        """Keep `batch` to write once the database takes it: answered at once (as held),
        written in order by `_retry`; refused when too much is held already."""
        for events, future in batch:
            if len(self.held) + len(events) > self.HELD_AT_MOST:
                future.set_exception(DatabaseUnavailable(len(self.held)))
                continue
            self.held.extend(events)
            future.set_result(len(events))
        self.metrics.held.set(len(self.held))
        if self.held and self._retrying is None:
            self._retrying = asyncio.get_running_loop().call_later(self.RETRY_SECONDS, self._retry)

    def _retry(self) -> None:
        """Write one batch of what is held, in order; the next batch at the loop's next
        pass (posts and /health are answered in between), or later if it still fails."""
        self._retrying = None
        loop = asyncio.get_running_loop()
        if self.write_held(self.RETRY_BATCH):
            log.info("The held events are written")
        elif self._written_some:
            self._retrying = loop.call_soon(self._retry)
        else:
            self._retrying = loop.call_later(self.RETRY_SECONDS, self._retry)

    def write_held(self, at_most: int | None = None) -> bool:
        """Write the held events, in order (`at_most` of them); True once none is held.
        An event the database refuses as data (an integrity error) is logged and dropped;
        each event leaves `held` as soon as it is written."""
        self._written_some = False
        batch = self.held[:at_most] if at_most else list(self.held)
        if not batch:
            return True
        try:
            self.record(batch)
            del self.held[: len(batch)]
            self._written_some = True
        except Exception as e:
            if unavailable(e):
                return False
            for event in batch:  # one event the database refuses: the others are written
                try:
                    self.record([event])
                except Exception as refused:
                    if unavailable(refused):
                        break
                    log.error("Dropping a held event the database refuses: %s (%s)", event, refused)
                del self.held[0]
                self._written_some = True
        finally:
            self.metrics.held.set(len(self.held))
        return not self.held

    def last_write(self) -> None:
        """At the service's stop: write what is held, or say how much is lost (the
        reconciliation recovers the servers still running, not the stops)."""
        if self._retrying is not None:
            self._retrying.cancel()
        if self.held and not self.write_held():
            log.error(
                "%d accepted events could not be written before the service stopped and are lost: "
                "the next reconciliation records the servers still running, not the exact stops",
                len(self.held),
            )

    def record(self, events: Sequence[Event]) -> int:
        """Record `events` in one transaction: all or nothing."""
        with self.open_db() as db:
            record(db, events)
            db.commit()
        for event in events:
            self.metrics.events.labels(_kind(event)).inc()
        return len(events)


class DatabaseUnavailable(Exception):
    """The database cannot take events and too many are held already."""

    def __init__(self, held: int):
        super().__init__(f"the accounting database is unavailable, and {held} events wait already")


def unavailable(error: Exception) -> bool:
    """The database cannot take writes now (down, full, locked, the pool exhausted), as
    opposed to refusing these events (their data)."""
    return isinstance(error, PoolTimeout) or (
        isinstance(error, DBAPIError) and not isinstance(error, IntegrityError | DataError)
    )
