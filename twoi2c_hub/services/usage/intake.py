"""Event intake: the spawners' events, parsed once and recorded in shared transactions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from sqlalchemy.orm import sessionmaker

from ...accounting.events import Event, ServerStarted, ServerStopped
from ...accounting.recording import record
from .metrics import UsageMetrics


def now_ms() -> int:
    return int(time.time() * 1000)


def _kind(event: Event) -> str:
    return "start" if isinstance(event, ServerStarted) else "stop" if isinstance(event, ServerStopped) else "groups"


class EventIntake:
    """Records batches of typed events, answering once they are committed.

    Requests whose bodies the event loop read in the same pass share one transaction
    (group commit), made at the loop's next callback: many spawners posting at once cost one
    write, not one each, and a lone post waits for no timer. While a commit runs, the posts
    that arrive meanwhile gather for the next one."""

    def __init__(self, open_db: sessionmaker, metrics: UsageMetrics):
        self.open_db = open_db
        self.metrics = metrics
        self._waiting: list[tuple[Sequence[Event], asyncio.Future]] = []

    async def submit(self, events: Sequence[Event]) -> int:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((events, future))
        if len(self._waiting) == 1:
            asyncio.get_running_loop().call_soon(self._commit_waiting)
        return await future

    def _commit_waiting(self) -> None:
        batch, self._waiting = self._waiting, []
        try:
            self.record([event for events, _ in batch for event in events])
        except Exception:
            # one bad request must not fail the others: record each request on its own
            for events, future in batch:
                try:
                    future.set_result(self.record(events))
                except Exception as e:
                    future.set_exception(e)
        else:
            for events, future in batch:
                future.set_result(len(events))

    def record(self, events: Sequence[Event]) -> int:
        """Record `events` in one transaction: all or nothing."""
        with self.open_db() as db:
            record(db, events)
            db.commit()
        for event in events:
            self.metrics.events.labels(_kind(event)).inc()
        return len(events)
