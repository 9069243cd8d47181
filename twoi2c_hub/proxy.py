"""The Python configurable-http-proxy, able to forward many requests at once.

The proxy forwards every request with tornado's `AsyncHTTPClient`, whose default is at
most 10 requests in flight for all upstreams together: ten slow reports from a service
would queue every other request, the hub's login and API included, behind them (and past
the client's 20 s timeout, as 503s). This runs the same proxy with room for
`MAX_IN_FLIGHT` requests, so one upstream's slow answers do not hold up another's.

It also passes on a stream as it comes: the proxy's own handler reads a whole answer
before sending any of it, so the spawn page's progress (an event stream that ends when the
server is ready) showed nothing until the end -- not the "you are next in line" message,
nor any step. Here an event stream's every chunk is sent on at once; other answers are
sent whole, as before.

While the hub restarts (killed, or restarted by its supervisor) the proxy answers a page
in words, 503 with Retry-After: before, a person saw "503: Service Unavailable" while the
hub was down, then the hub's "There is no such page" for the seconds between the new
proxy's start and the hub's route (benchmarks/faults.py, the hub-kill round).

Used by `twoi2c-hub demo` and the local hub runner: `python -m twoi2c_hub.proxy` takes
configurable-http-proxy's own options. (On zero-to-jupyterhub the proxy is the chart's
own, which has no such limit.)
"""

from __future__ import annotations

MAX_IN_FLIGHT = 1000
RETRY_AFTER_SECONDS = 5
# configurable-http-proxy's own, replaced in main()
original_get_target_url = original_default_error = None
RESTARTING_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>The hub is restarting</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 36rem; margin: 3rem auto; padding: 0 1rem">
<h1>The hub is restarting</h1>
<p>It answers again in a few seconds. Reload this page then.</p>
<p>A server that was running goes on running; a server you were starting may need starting again.</p>
</body></html>
"""


async def get_target_url_or_wait(self, path):
    """configurable-http-proxy's `get_target_url`, but with no route at all (a proxy just
    started, the hub's route not yet added) the hub is restarting: say so, not 404."""
    if self.proxy.target_for_req(None, path) is None and not self.proxy.get_routes():
        self.proxy.log.warning(f"503 {self.request.method} {self.request.path}: no routes yet, the hub is starting")
        hub_restarting(self, 503, None)
        return None
    return await original_get_target_url(self, path)


def hub_restarting(self, code, err):
    """The answer when the error target (the hub) cannot give its own error page: for
    503 (nothing answers) the restarting page, other codes as the proxy's own."""
    if code != 503:
        return original_default_error(self, code, err)
    self.set_status(503)
    self.set_header("Content-Type", "text/html; charset=utf-8")
    self.set_header("Retry-After", str(RETRY_AFTER_SECONDS))
    self.set_header("Cache-Control", "no-store")
    self.finish(RESTARTING_PAGE)


async def call_proxy_streaming(self, path=None):
    """configurable-http-proxy's `ProxyHandler.call_proxy`, sending an event stream's
    chunks on as they arrive (its status and headers first, as the proxy sets them)."""
    from tornado.httpclient import AsyncHTTPClient
    from tornado.httputil import HTTPHeaders, parse_response_start_line

    url = await self.get_target_url(path)
    if url is None:
        return
    request = self._get_proxy_request(url)
    upstream = {"code": 502, "headers": HTTPHeaders()}
    streaming = False

    def on_header(line: str) -> None:
        if line.startswith("HTTP/"):
            upstream["code"], upstream["headers"] = parse_response_start_line(line.strip()).code, HTTPHeaders()
        elif line.strip():
            upstream["headers"].parse_line(line)

    def on_chunk(chunk: bytes) -> None:
        nonlocal streaming
        if not streaming:
            start_answer(self, upstream["code"], upstream["headers"])
            streaming = True
        self.write(chunk)
        if upstream["headers"].get("Content-Type", "").startswith("text/event-stream"):
            self.flush()

    request.header_callback = on_header
    request.streaming_callback = on_chunk
    try:
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
    except Exception as err:
        if not streaming:
            await self.handle_proxy_error(503, err)
            return
        raise
    if not streaming:
        start_answer(self, response.code, response.headers)
    self.finish()


def start_answer(handler, code: int, headers) -> None:
    """The upstream's status and headers on the proxy's answer (as the proxy's own does)."""
    handler.set_status(code)
    existing = {h[0].lower() for h in handler._headers.get_all()}
    for key, value in headers.get_all():
        if key.lower() in ("content-length", "transfer-encoding", "content-encoding", "connection"):
            continue
        if key.lower() in existing:
            handler.set_header(key, value)
        else:
            handler.add_header(key, value)


def main() -> None:
    from tornado.httpclient import AsyncHTTPClient

    AsyncHTTPClient.configure(None, max_clients=MAX_IN_FLIGHT)
    from configurable_http_proxy.cli import main as proxy_main
    from configurable_http_proxy.handlers import ProxyHandler

    global original_get_target_url, original_default_error
    original_get_target_url = ProxyHandler.get_target_url
    original_default_error = ProxyHandler.handle_proxy_error_default
    ProxyHandler.call_proxy = call_proxy_streaming
    ProxyHandler.get_target_url = get_target_url_or_wait
    ProxyHandler.handle_proxy_error_default = hub_restarting
    proxy_main()


if __name__ == "__main__":
    main()
