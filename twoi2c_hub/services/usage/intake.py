"""Event intake: the spawners' events, parsed once and recorded in shared transactions."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from sqlalchemy.exc import OperationalError
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
    # beyond this many, posts are refused (503) and the reconciliation catches up instead
    MAX_HELD = 100_000
    RETRY_SECONDS = 2.0

    def __init__(self, open_db: sessionmaker, metrics: UsageMetrics):
        self.open_db = open_db
        self.metrics = metrics
        self._waiting: list[tuple[Sequence[Event], asyncio.Future]] = []
        # accepted, in order, not yet written: the database was unavailable
        self.held: list[Event] = []
        self._retrying: asyncio.TimerHandle | None = None

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
        except OperationalError as e:
            log.warning("The database cannot take events now (%s); holding them, retrying", e.orig or e)
            self._hold(batch)
        except Exception:
            # one bad request must not fail the others: record each request on its own
            for events, future in batch:
                try:
                    future.set_result(self.record(events))
                except OperationalError:
                    self._hold([(events, future)])
                except Exception as e:
                    future.set_exception(e)
        else:
            for events, future in batch:
                future.set_result(len(events))

    def _hold(self, batch: list[tuple[Sequence[Event], asyncio.Future]]) -> None:
        """Keep `batch` to write once the database takes it: answered at once (as held),
        written in order by `_retry`; refused when too much is held already."""
        for events, future in batch:
            if len(self.held) + len(events) > self.MAX_HELD:
                future.set_exception(DatabaseUnavailable(len(self.held)))
                continue
            self.held.extend(events)
            future.set_result(len(events))
        self.metrics.held.set(len(self.held))
        if self.held and self._retrying is None:
            self._retrying = asyncio.get_running_loop().call_later(self.RETRY_SECONDS, self._retry)

    def _retry(self) -> None:
        """Write what is held, in order, a batch at a time; again later if it still fails."""
        self._retrying = None
        while self.held:
            batch = self.held[:1000]
            try:
                self.record(batch)
            except OperationalError:
                self._retrying = asyncio.get_running_loop().call_later(self.RETRY_SECONDS, self._retry)
                break
            except Exception:
                for event in batch:  # one event the database refuses: the others are written
                    try:
                        self.record([event])
                    except OperationalError:
                        break
                    except Exception as e:
                        log.error("Dropping a held event the database refuses: %s (%s)", event, e)
                else:
                    del self.held[: len(batch)]
                    continue
                self._retrying = asyncio.get_running_loop().call_later(self.RETRY_SECONDS, self._retry)
                break
            del self.held[: len(batch)]
        if not self.held:
            log.info("The held events are written")
        self.metrics.held.set(len(self.held))

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
