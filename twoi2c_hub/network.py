"""Small network helpers shared by the hub wiring and the local hub runner."""

from __future__ import annotations

import os
import socket

RESERVED_PORTS_VARIABLE = "TWOI2C_RESERVED_PORTS"
"""Ports a parent process picked and will bind later (comma-separated): `free_port` in a
child never hands them out again (the local hub passes its proxy and hub ports to the hub
process, whose wiring picks the services' ports)."""

_handed_out: set[int] = set()


def reserved_ports() -> set[int]:
    """The ports handed out in this process and those reserved by the parent."""
    inherited = os.environ.get(RESERVED_PORTS_VARIABLE, "")
    return _handed_out | {int(p) for p in inherited.split(",") if p.strip().isdigit()}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on at `host` now (the OS picks it).

    A port picked is free only until someone binds it, and a hub's ports are bound seconds
    after they are picked (the proxy's and the services' when the hub starts them), so
    two picks in that time can be the same port. Never the same twice in one process,
    nor one reserved by the parent process (RESERVED_PORTS_VARIABLE).
    """
    taken = reserved_ports()
    for _ in range(100):
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in taken:
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free TCP port at {host} outside the {len(taken)} already handed out")
