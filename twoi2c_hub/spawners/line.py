"""The line people wait in when more servers are asked for than the hub starts at once.

A class of 300 pressing Start in the same minute would otherwise meet JupyterHub's
`concurrent_spawn_limit` as a refusal ("Too many users trying to log in right now").
With `concurrent_starts` set, at most that many servers start at the same time and the
others wait their turn, first come first served; the spawn page's progress says where
each person is ("3 people are ahead of you") and about how long that is, from how long
recent starts took. Nobody is refused for being in line: JupyterHub's own limit still
caps starting plus waiting.

One line per hub process (the hub runs one event loop); its size is on the hub's
/metrics.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque

from jupyterhub.utils import wait_for_http_server
from prometheus_client import Gauge
from traitlets import Integer
from traitlets.config import LoggingConfigurable

WAITING = Gauge("twoi2c_servers_waiting_to_start", "Servers waiting in line to start")
STARTING = Gauge("twoi2c_servers_starting", "Servers starting now, out of concurrent_starts")


class Ticket:
    """One person's place: `admitted` resolves when it is their turn."""

    __slots__ = ("admitted", "joined")

    def __init__(self):
        self.admitted: asyncio.Future = asyncio.get_running_loop().create_future()
        self.joined = time.monotonic()


class StartLine:
    """First come, first served, at most `limit` starting at once."""

    def __init__(self):
        self.limit = 1
        self.starting = 0
        self.waiting: deque[Ticket] = deque()
        # seconds the last starts took from their turn to a server that answers
        self.recent: deque[float] = deque(maxlen=20)

    def join(self, limit: int) -> Ticket:
        """A place in line; admitted at once if a start is free and nobody waits."""
        self.limit = max(1, limit)
        ticket = Ticket()
        if self.starting < self.limit and not self.waiting:
            self._admit(ticket)
        else:
            self.waiting.append(ticket)
        self._count()
        return ticket

    def ahead_of(self, ticket: Ticket) -> int | None:
        """How many people are ahead of `ticket` (None once it is their turn or they left)."""
        try:
            return self.waiting.index(ticket)
        except ValueError:
            return None

    def expected_wait(self, ahead: int) -> float | None:
        """Seconds until the turn of someone with `ahead` people before them, from how
        long recent starts took (None before any start finished)."""
        if not self.recent:
            return None
        return math.ceil((ahead + 1) / self.limit) * sorted(self.recent)[len(self.recent) // 2]

    def leave(self, ticket: Ticket, took: float | None = None) -> None:
        """Out of line: a start done (`took` seconds, counted for the estimates) or given
        up; the next in line gets the free start."""
        if ticket.admitted.done() and not ticket.admitted.cancelled():
            if took is not None:
                self.recent.append(took)
            self.starting -= 1
        else:
            if ticket in self.waiting:
                self.waiting.remove(ticket)
            ticket.admitted.cancel()
        while self.waiting and self.starting < self.limit:
            following = self.waiting.popleft()
            if not following.admitted.done():  # (done: cancelled while waiting, e.g. at shutdown)
                self._admit(following)
        self._count()

    def _admit(self, ticket: Ticket) -> None:
        self.starting += 1
        ticket.admitted.set_result(time.monotonic())

    def _count(self) -> None:
        WAITING.set(len(self.waiting))
        STARTING.set(self.starting)


def in_words(ahead: int, seconds: float | None) -> str:
    """What the progress says to someone waiting: their place, about how long."""
    people = "1 person is" if ahead == 1 else f"{ahead} people are"
    text = f"The hub is busy: {people} ahead of you in line to start a server."
    if ahead == 0:
        text = "The hub is busy: you are next in line to start a server."
    if seconds is not None:
        text += f" Your turn comes in about {_duration(seconds)}."
    return text + " Keep this page open: your server starts by itself."


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{max(10, math.ceil(seconds / 10) * 10)} seconds"
    minutes = round(seconds / 60)
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


# the hub's line, shared by every spawner in the hub process
LINE = StartLine()


class WaitsInLine(LoggingConfigurable):
    """A spawner's place in the hub's line: `wait_in_line` after the selection is
    checked, `leave_line` when the start is done (see ProfileSpawnerMixin.start)."""

    concurrent_starts = Integer(
        0,
        config=True,
        help="""Servers that start at the same time, hub-wide; more wait in line, first come
        first served, and the spawn page tells each person their place and about how long
        (0: no line). A start holds its place until the server answers. JupyterHub's
        `concurrent_spawn_limit` still caps those starting plus those waiting.""",
    )

    _ticket: Ticket | None = None
    _past_line = False

    async def wait_in_line(self) -> None:
        """Wait for a turn to start, after the selection is checked (nobody waits to be
        refused). Cancelled (the start timed out), the place is given up."""
        if not self.concurrent_starts:
            return
        self._ticket = LINE.join(self.concurrent_starts)
        try:
            await self._ticket.admitted
        except BaseException:
            self.leave_line()
            raise
        self._past_line = True

    def leave_line(self, took: float | None = None) -> None:
        ticket, self._ticket, self._past_line = self._ticket, None, False
        if ticket is not None:
            LINE.leave(ticket, took)

    def leave_line_after_start(self) -> None:
        """The start is over (done or failed): the next in line gets its turn."""
        admitted = self._ticket.admitted if self._ticket is not None else None
        took = None
        if admitted is not None and admitted.done() and not admitted.cancelled():
            took = time.monotonic() - admitted.result()
        self.leave_line(took)

    async def hold_place_until_answering(self, started) -> None:
        """In line, the place is held until the server answers (JupyterHub waits for that
        next): a local server's process, a pod's container are still booting."""
        if self._ticket is None or self.internal_ssl or self.server is None:
            return
        where = started if isinstance(started, str) else "http://{}:{}".format(*started)
        try:
            await wait_for_http_server(where + self.server.base_url, timeout=self.http_timeout)
        except TimeoutError:
            pass  # JupyterHub's own wait says what happened

    async def line_progress(self):
        """Progress events while this person waits in line: their place, about how long."""
        if not self.concurrent_starts:
            return
        said = None
        while self.pending == "spawn" and not self._past_line:
            ahead = LINE.ahead_of(self._ticket) if self._ticket is not None else None
            if ahead is not None:
                text = in_words(ahead, LINE.expected_wait(ahead))
                if text != said:
                    said = text
                    yield {"progress": 5, "message": text}
            await asyncio.sleep(0.5)

    async def progress(self):
        async for event in self.line_progress():
            yield event
        async for event in super().progress():
            yield event
