"""The services' one hub API client: every page of a list, and retries when the hub is
down, busy or slow, against a small hub in this process that pages as JupyterHub does
(at most `api_page_max_limit` items a page, whatever `limit` asks, and only for a client
that accepts its pagination media type). The same client on a real hub is tested in
test_budget_service.py (the enforcer stops people on every page)."""

import asyncio
import json

import pytest
from tornado import web
from tornado.httpclient import HTTPClientError
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from twoi2c_hub.services.framework.hubapi import PAGINATION, HubAPI

MAX_PAGE = 2
PEOPLE = [{"name": f"learner-{i}", "servers": {"": {"ready": True}}} for i in range(5)]


class Users(web.RequestHandler):
    """GET /hub/api/users as JupyterHub answers it (apihandlers/base.py get_api_pagination)."""

    def get(self):
        hub = self.settings["hub"]
        hub.asked.append((self.request.headers.get("Authorization"), self.request.query))
        if hub.failures:
            status, headers = hub.failures.pop(0)
            for name, value in headers.items():
                self.set_header(name, value)
            raise web.HTTPError(status)
        paginated = self.request.headers.get("Accept") == PAGINATION
        offset = int(self.get_argument("offset", "0"))
        limit = min(int(self.get_argument("limit", str(MAX_PAGE))), MAX_PAGE)
        items = PEOPLE[offset : offset + limit]
        if not paginated:
            self.write(json.dumps(items))  # the first page only: what the enforcer once got
            return
        following = None
        if offset + limit < len(PEOPLE):
            following = {"offset": offset + limit, "limit": limit, "url": "http://hub.internal/ignored"}
        pagination = {"offset": offset, "limit": limit, "total": len(PEOPLE), "next": following}
        self.write({"items": items, "_pagination": pagination})


class Slow(web.RequestHandler):
    """Answers only when the test is over."""

    async def get(self):
        self.settings["hub"].asked.append(("slow", self.request.query))
        await self.settings["hub"].over.wait()


class PlainList(web.RequestHandler):
    def get(self):
        self.write(json.dumps([{"name": "a"}, {"name": "b"}, {"name": "c"}]))


class SmallHub:
    def __init__(self):
        self.asked: list[tuple] = []
        self.failures: list[tuple[int, dict]] = []

    async def __aenter__(self):
        self.over = asyncio.Event()
        app = web.Application(
            [("/hub/api/users", Users), ("/hub/api/slow", Slow), ("/hub/api/groups", PlainList)], hub=self
        )
        sock, port = bind_unused_port()
        self.server = HTTPServer(app)
        self.server.add_sockets([sock])
        self.url = f"http://127.0.0.1:{port}/hub/api"
        return self

    async def __aexit__(self, *exc):
        self.over.set()
        self.server.stop()


def client(hub: SmallHub, **limits) -> HubAPI:
    return HubAPI(hub.url, "service-token", backoff=0.001, **limits)


def test_every_page_of_a_list_is_read_with_jupyterhubs_pagination():
    async def run():
        async with SmallHub() as hub:
            names = [u["name"] async for u in client(hub).paged("/users", {"state": "active"})]
            return names, hub.asked

    names, asked = asyncio.run(run())
    assert names == [p["name"] for p in PEOPLE]
    # the hub gives 2 a page whatever is asked: the next pages start where it says
    assert asked == [
        ("token service-token", "state=active&offset=0&limit=200"),
        ("token service-token", "state=active&offset=2&limit=2"),
        ("token service-token", "state=active&offset=4&limit=2"),
    ]


def test_a_list_the_hub_does_not_paginate_is_taken_whole():
    async def run():
        async with SmallHub() as hub:
            return [g["name"] async for g in client(hub).paged("/groups")]

    assert asyncio.run(run()) == ["a", "b", "c"]


def test_a_hub_that_is_restarting_or_busy_is_asked_again():
    async def run():
        async with SmallHub() as hub:
            # a 503 while it restarts, then a 429 that says when to come back
            hub.failures = [(503, {}), (429, {"Retry-After": "0"})]
            names = [u["name"] async for u in client(hub).paged("/users")]
            return names, [query for _, query in hub.asked]

    names, asked = asyncio.run(run())
    assert names == [p["name"] for p in PEOPLE]
    assert asked == ["offset=0&limit=200"] * 3 + ["offset=2&limit=2", "offset=4&limit=2"]


def test_retries_are_bounded_and_the_last_failure_is_raised():
    async def run():
        async with SmallHub() as hub:
            hub.failures = [(503, {})] * 5
            with pytest.raises(HTTPClientError) as failed:
                await client(hub, retries=2).request("GET", "/users")
            return failed.value.code, len(hub.asked)

    assert asyncio.run(run()) == (503, 3)  # the first try and two more


def test_a_refusal_is_not_asked_again():
    async def run():
        async with SmallHub() as hub:
            hub.failures = [(403, {})]
            with pytest.raises(HTTPClientError) as failed:
                await client(hub).request("GET", "/users")
            return failed.value.code, len(hub.asked)

    assert asyncio.run(run()) == (403, 1)


def test_a_hub_that_does_not_answer_in_time_is_given_up_on():
    async def run():
        async with SmallHub() as hub:
            with pytest.raises(HTTPClientError) as failed:
                await client(hub, timeout=0.2, retries=1).request("GET", "/slow")
            return failed.value.code, len(hub.asked)

    assert asyncio.run(run()) == (599, 2)  # tornado's code for no answer in time


def test_a_hub_that_is_down_is_tried_again_then_reported():
    async def run():
        sock, port = bind_unused_port()
        sock.close()  # nothing listens there
        hub = HubAPI(f"http://127.0.0.1:{port}/hub/api", "t", backoff=0.001, retries=2)
        with pytest.raises(OSError):
            await hub.request("GET", "/users")

    asyncio.run(run())
