"""A service's background loops (`every`) and its quick end (`exit_at_once`)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("twoi2c.service")


async def every(
    seconds: float | Callable[[], float],
    work: Callable[[], Awaitable[Any]],
    *,
    failed: str,
    count_failure: Callable[[], Any] | None = None,
) -> None:
    """`work()` at once, then `seconds` after each run ends, until cancelled (the
    service's stop): a run that raises is counted (`count_failure`), logged as
    "<failed>; will try again" with its traceback, and the next run comes as usual.
    `seconds` may be a callable, read before each wait."""
    while True:
        try:
            await work()
        except Exception:
            if count_failure is not None:
                count_failure()
            log.exception("%s; will try again", failed)
        await asyncio.sleep(seconds() if callable(seconds) else seconds)


def exit_at_once(code: int) -> None:
    """End the service process with `code` once `serve()` has stopped it cleanly.

    The interpreter's own exit (collecting every module, joining the database threads)
    costs CPU time, and at the service's lowered priority on a busy machine that took
    3-5 s for each service (measured on 2 cores with 2 busy loops), while JupyterHub stops
    its services one after another: a hub stopped 13-18 s. Everything that matters is done
    by then: the server is closed, the loops stopped, the engine disposed and the logs are
    flushed here. Database work still running in the pool is abandoned as a SIGKILL would
    (its transaction is not committed)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
