"""The front doors of the fleet benchmark's hubs: `python hub_doors.py doors.json`.

A real hub is a JupyterHub, its proxy and its services; the fleet talks only to the hub's
address, and the services only to the hub's API. Fifty real hubs would not fit on one
machine beside everything else, so each hub here is its real usage and cost services
(processes of their own, each with its own database) behind a door on a port of its own
that does, for that hub, what the fleet and the services need of the hub:

- `/services/usage/...` and `/services/cost/...`: passed to the hub's services, as the
  proxy does (headers, status and body as they are);
- `/hub/api/user`: the token check the services make for each token they see (JupyterHub's
  answer for a service's token): the hub's fleet token is a service with the fleet's
  scopes (those `docs/fleet.md` gives it), the services' own token is theirs, any other
  token is refused (403), as the hub would;
- any other `/hub/api/...` list (the reconciler's and the enforcer's `/users`): empty.

`doors.json` is a list of `{"port", "usage", "cost", "fleet_token", "service_token"}`
(the services' ports); one process serves every door.
"""

from __future__ import annotations

import asyncio
import json
import sys

from tornado import httpclient, web

FLEET_SCOPES = [
    "access:services!service=usage",
    "access:services!service=cost",
    "custom:usage:digests",
    "custom:cost:statements",
]
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


class TokenCheck(web.RequestHandler):
    def initialize(self, door: dict) -> None:
        self.door = door

    def get(self) -> None:
        token = self.request.headers.get("Authorization", "").partition(" ")[2]
        if token == self.door["fleet_token"]:
            model = {"kind": "service", "name": "fleet-reader", "admin": False, "scopes": FLEET_SCOPES}
        elif token == self.door["service_token"]:
            model = {"kind": "service", "name": "usage", "admin": False, "scopes": ["list:users", "read:users"]}
        else:
            raise web.HTTPError(403)
        self.finish(model)


class EmptyList(web.RequestHandler):
    def get(self, _path: str) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish("[]")


class Forward(web.RequestHandler):
    def initialize(self, port: int) -> None:
        self.port = port

    async def get(self, _path: str) -> None:
        headers = {k: v for k, v in self.request.headers.get_all() if k.lower() not in HOP_BY_HOP | {"host"}}
        answer = await httpclient.AsyncHTTPClient().fetch(
            f"http://127.0.0.1:{self.port}{self.request.uri}",
            headers=headers,
            raise_error=False,
            follow_redirects=False,
            request_timeout=600,
        )
        self.set_status(answer.code if answer.code != 599 else 502)
        for name, value in answer.headers.get_all():
            if name.lower() not in HOP_BY_HOP:
                self.add_header(name, value)
        self.finish(answer.body or b"")


def door(spec: dict) -> web.Application:
    return web.Application(
        [
            ("/hub/api/user", TokenCheck, {"door": spec}),
            ("/hub/api/(.*)", EmptyList),
            ("/services/usage/(.*)", Forward, {"port": spec["usage"]}),
            ("/services/cost/(.*)", Forward, {"port": spec["cost"]}),
        ]
    )


async def main(path: str) -> None:
    httpclient.AsyncHTTPClient.configure(None, max_clients=100)
    with open(path) as file:
        for spec in json.load(file):
            door(spec).listen(spec["port"], "127.0.0.1")
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
