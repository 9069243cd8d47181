"""What the benchmarks share: percentiles, waiting for a service, and running a client as
a remote one."""

from __future__ import annotations

import math
import os
import statistics
import time

import requests


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank percentile: the smallest value that at least a fraction `q` of the
    values are at or below (p99 of 100 values: the 99th smallest; p50 of 4: the 2nd).
    Always a value that was measured; None for no values. Every benchmark's pNN uses it."""
    if not values:
        return None
    ordered = sorted(values)
    # rounded first: 0.07 * 100 is 7.000000000000001, whose ceiling is not rank 7
    rank = math.ceil(round(q * len(ordered), 9))
    return ordered[min(len(ordered), max(1, rank)) - 1]


def median_ms(run, repeat: int) -> float:
    """The median wall time of `repeat` calls of `run()`, in milliseconds (2 decimals)."""
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        times.append((time.perf_counter() - began) * 1000)
    return round(statistics.median(times), 2)


def wait_for_service(hub, name: str, timeout: float = 120) -> None:
    """Until the hub's service `name` answers its /health (through the proxy)."""
    deadline = time.monotonic() + timeout
    while requests.get(f"{hub.url}/services/{name}/health", timeout=30).status_code != 200:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the {name} service did not start:\n" + hub.log_tail())
        time.sleep(0.2)


def as_remote_client() -> None:
    """Run this process at the lowest priority in a session of its own: on one machine a
    load client would otherwise take CPU that a remote client could not (with autogroup
    scheduling a niceness counts only inside its own session, so the session is lowered)."""
    os.setsid()
    os.nice(19)
    try:
        with open("/proc/self/autogroup", "w") as autogroup:
            autogroup.write("19")
    except OSError:
        pass
