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


def _pick_and_hold(host: str) -> int:
    """A port the OS picks, left held for about a minute (TCP's TIME_WAIT) against
    everyone but a server that binds it with SO_REUSEADDR, as Tornado, asyncio, uvicorn
    and PostgreSQL do: a connection to it is accepted and closed from the port's side."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, 0))
        listener.listen(1)
        address = listener.getsockname()
        with socket.create_connection(address[:2]) as client:
            accepted, _ = listener.accept()
            accepted.close()  # closed first: its end, `address`, waits in TIME_WAIT
            client.recv(1)  # the close reached the client
    return address[1]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on at `host`, for a server that starts soon.

    A hub's ports are bound seconds after they are picked (the proxy's and the services'
    when the hub starts them); meanwhile another process asking the OS for any free port
    (a single-user server of another hub, say) could be given the same one. So the port is
    held in TIME_WAIT for about a minute (`_pick_and_hold`), and it is never the same
    twice in one process, nor one reserved by the parent process (RESERVED_PORTS_VARIABLE).
    """
    taken = reserved_ports()
    for _ in range(100):
        port = _pick_and_hold(host)
        if port not in taken:
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free TCP port at {host} outside the {len(taken)} already handed out")
