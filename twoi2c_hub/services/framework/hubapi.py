"""`HubAPI`: the one client of JupyterHub's REST API, for every service of this package.

It talks to the hub as jupyterhub-idle-culler does: with the token the hub gives a
managed service (`JUPYTERHUB_API_URL`, `JUPYTERHUB_API_TOKEN`), reading a list page by
page with JupyterHub's pagination (the hub gives at most `api_page_max_limit` items a
page, 200 by default, whatever `limit` asks), never assuming the hub is up, and with its
limits named below. `fetch` is the same discipline for a service's other calls out (a
Prometheus query, an alert webhook): a timeout on every request, and a few retries with
growing waits while the other end cannot be reached, times out, or answers 429 or 5xx
(it restarts, or it is busy).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse

log = logging.getLogger("twoi2c.hubapi")

# the media type that asks JupyterHub for `{"items": [...], "_pagination": {...}}`
PAGINATION = "application/jupyterhub-pagination+json"
DEFAULT_HUB_API_URL = "http://127.0.0.1:8081/hub/api"

# seconds a request may take, connecting included
REQUEST_TIMEOUT_SECONDS = 20.0
# times a request is tried again after a failure that may pass
RETRIES = 3
# seconds before the first retry, doubled before each next one (0.5, 1, 2)
BACKOFF_SECONDS = 0.5
# the longest wait before a retry, a 429's Retry-After included
MAX_BACKOFF_SECONDS = 30.0
# items asked for a page (the hub may give fewer: its api_page_max_limit)
PAGE_SIZE = 200
# requests of one service to the hub in flight at once
CONCURRENCY = 10
# failures that may pass: too many requests, the other end failing or restarting, and
# 599 (tornado's: no connection, or no answer in time)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 599})


def retry_wait(error: Exception, attempt: int, backoff: float) -> float | None:
    """Seconds to wait before trying again after `error` (the `attempt`th retry, from
    0); None if trying again cannot help (a 4xx: the request itself is wrong)."""
    if isinstance(error, HTTPClientError):
        if error.code not in RETRY_STATUSES:
            return None
        asked = error.response.headers.get("Retry-After") if error.response is not None else None
        if asked and asked.strip().isdigit():
            return min(float(asked), MAX_BACKOFF_SECONDS)
    return min(backoff * 2**attempt, MAX_BACKOFF_SECONDS)


async def fetch(
    request: HTTPRequest, *, what: str, retries: int = RETRIES, backoff: float = BACKOFF_SECONDS
) -> HTTPResponse:
    """The answer to `request`, tried again up to `retries` times while it fails in a way
    that may pass; the last failure is raised (tornado's `HTTPClientError`, or an
    `OSError` when nothing answers). `what` names the request in the log, never its URL
    (a webhook's URL is a secret)."""
    attempt = 0
    while True:
        try:
            return await AsyncHTTPClient().fetch(request)
        except (HTTPClientError, OSError) as e:
            wait = retry_wait(e, attempt, backoff)
            if wait is None or attempt >= retries:
                raise
            failure = e
        attempt += 1
        log.warning("%s failed (%s); trying again in %.1f s (%d of %d)", what, failure, wait, attempt, retries)
        await asyncio.sleep(wait)


class HubAPI:
    """JupyterHub's REST API, as one service's token may use it."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
        retries: int = RETRIES,
        backoff: float = BACKOFF_SECONDS,
        page_size: int = PAGE_SIZE,
        concurrency: int = CONCURRENCY,
        follow_redirects: bool = True,
        name: str = "The hub",
    ):
        self.url = url.rstrip("/")
        self.name = name  # how the log names the other end ("The hub", "Hub ocean-prod")
        self.follow_redirects = follow_redirects
        self.token = token
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.page_size = page_size
        self.in_flight = asyncio.Semaphore(concurrency)

    @classmethod
    def from_environment(cls, **limits: Any) -> HubAPI:
        """The hub's API with the URL and token the hub gives a managed service."""
        url = os.environ.get("JUPYTERHUB_API_URL", DEFAULT_HUB_API_URL)
        return cls(url, os.environ.get("JUPYTERHUB_API_TOKEN", ""), **limits)

    async def request(
        self, method: str, path: str, *, params: dict | None = None, body: Any = None, accept: str | None = None
    ) -> Any:
        """The hub's JSON answer to `method path` (None if it answers no body); `body`
        is sent as JSON. Failures are raised as `fetch` raises them."""
        url = self.url + path + (f"?{urllib.parse.urlencode(params)}" if params else "")
        headers = {"Authorization": f"token {self.token}"}
        if accept:
            headers["Accept"] = accept
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = HTTPRequest(
            url,
            method=method,
            headers=headers,
            # tornado wants a body with these methods, even an empty one
            body=json.dumps(body) if body is not None else ("" if method in ("POST", "PUT", "PATCH") else None),
            request_timeout=self.timeout,
            connect_timeout=self.timeout,
            follow_redirects=self.follow_redirects,
        )
        async with self.in_flight:
            response = await fetch(
                request, what=f"{self.name}'s {method} {path}", retries=self.retries, backoff=self.backoff
            )
        return json.loads(response.body) if response.body else None

    async def paged(self, path: str, params: dict | None = None) -> AsyncIterator[Any]:
        """Every item of the list at `path`, a page at a time.

        JupyterHub answers a client that accepts its pagination media type with
        `{"items": [...], "_pagination": {"offset", "limit", "total", "next"}}`, where
        `next` is `{"offset", "limit", "url"}` or null on the last page. The next page is
        asked of this client's own URL with `next`'s offset and limit (its `url` is the
        hub's view of the address, which may not be this service's). A list the hub
        does not paginate (a plain JSON list) is taken whole."""
        query = {**(params or {}), "offset": 0, "limit": self.page_size}
        while True:
            page = await self.request("GET", path, params=query, accept=PAGINATION)
            if not isinstance(page, dict):
                for item in page or []:
                    yield item
                return
            for item in page["items"]:
                yield item
            following = (page.get("_pagination") or {}).get("next")
            if not following or following["offset"] <= query["offset"]:
                return
            query.update(offset=following["offset"], limit=following["limit"])
