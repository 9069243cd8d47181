"""A service's background loops (`every`), its quick end (`exit_at_once`), and its end
with the hub that started it (`stop_with_the_hub`)."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("twoi2c.service")
PR_SET_PDEATHSIG = 1  # linux/prctl.h


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


def _parent() -> tuple[int, bool]:
    """This process's parent, and whether it is a jupyterhub process (`python -m
    jupyterhub ...`, or the `jupyterhub` script: `python .../bin/jupyterhub ...`)."""
    parent = os.getppid()
    try:
        command = Path(f"/proc/{parent}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return parent, False
    return parent, any(Path(os.fsdecode(part)).name == "jupyterhub" for part in command[:3])


# read as the service's modules are imported, its first moments: a hub killed while the
# service starts is still known to have been its parent
PARENT, PARENT_IS_A_HUB = _parent()


def stop_with_the_hub(stop: Callable[[], Any]) -> bool:
    """Call `stop()` when the JupyterHub that started this service ends, even by kill -9.

    A hub that is killed leaves the services it started running, with tokens the next hub
    no longer accepts: the hub restarted by its supervisor starts new ones, and the old
    ones would go on reconciling, sampling and rolling up beside them (measured with
    benchmarks/faults.py: two of each after a hub's kill -9). Linux sends this process
    SIGTERM when its parent ends (prctl PR_SET_PDEATHSIG); the service's usual stop
    follows. Strictly, when the parent's *thread* that started it ends: JupyterHub 6
    starts its managed services with Popen on its main thread (jupyterhub/services/
    service.py, _ServiceSpawner.start), whose end is the hub's. Only for a service whose
    parent is a jupyterhub process (a service run by hand or by systemd is left alone);
    True when watching."""
    if not PARENT_IS_A_HUB:
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != PARENT:  # the hub ended before the watch was set
        stop()
    return True
