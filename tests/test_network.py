"""Ports picked now and bound seconds later, by another process."""

import errno
import socket

import pytest
from tornado.netutil import bind_sockets

from twoi2c_hub.network import free_port


def test_a_picked_port_is_held_against_others_until_its_server_binds_it():
    """A single-user server of another hub once got the port picked for a test hub's proxy
    in the seconds before the proxy bound it. A port free_port gives is refused to anyone
    who asks the OS for a port (no SO_REUSEADDR: JupyterHub's random_port, bind(0)) and
    given to the server it is meant for (SO_REUSEADDR, as Tornado's bind_sockets sets)."""
    port = free_port()
    for host in ("127.0.0.1", ""):
        with socket.socket() as other, pytest.raises(OSError) as refused:
            other.bind((host, port))
        assert refused.value.errno == errno.EADDRINUSE
    (server,) = bind_sockets(port, "127.0.0.1")
    try:
        server.listen(1)  # the proxy, the hub or a service takes it
        assert server.getsockname()[1] == port
    finally:
        server.close()
    assert free_port() != port  # never handed out twice
