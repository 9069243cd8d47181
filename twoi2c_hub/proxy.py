"""The Python configurable-http-proxy, able to forward many requests at once.

The proxy forwards every request with tornado's `AsyncHTTPClient`, whose default is at
most 10 requests in flight for all upstreams together: ten slow reports from a service
would queue every other request, the hub's login and API included, behind them (and past
the client's 20 s timeout, as 503s). This runs the same proxy with room for
`MAX_IN_FLIGHT` requests, so one upstream's slow answers do not hold up another's.

Used by `twoi2c-hub demo` and the local hub runner: `python -m twoi2c_hub.proxy` takes
configurable-http-proxy's own options. (On zero-to-jupyterhub the proxy is the chart's
own, which has no such limit.)
"""

from __future__ import annotations

MAX_IN_FLIGHT = 1000


def main() -> None:
    from tornado.httpclient import AsyncHTTPClient

    AsyncHTTPClient.configure(None, max_clients=MAX_IN_FLIGHT)
    from configurable_http_proxy.cli import main as proxy_main

    proxy_main()


if __name__ == "__main__":
    main()
