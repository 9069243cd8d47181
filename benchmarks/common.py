"""What the benchmarks share: waiting for a service, and running a client as a remote one."""

from __future__ import annotations

import os
import time

import requests


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
