"""`HubService`: a tornado application run by the hub as a managed service.

A service subclass names its routes, its read-all scope and its templates; this base
reads the hub's environment (`JUPYTERHUB_SERVICE_PREFIX`, `JUPYTERHUB_SERVICE_URL`,
`JUPYTERHUB_API_TOKEN`, ...), holds the one client of the hub's REST API (`hub_api`),
adds the OAuth callback, `/health` and `/metrics`, runs database work in a small thread
pool so that the event loop (and `/health`) always answers, and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker
from tornado import web
from tornado.httpserver import HTTPServer

from .handlers import HealthHandler, MetricsHandler, NotFoundHandler
from .hubapi import HubAPI
from .pages import Pages

log = logging.getLogger("twoi2c.service")


def _idle_priority() -> None:
    """Reports only use CPU that nothing else on the machine wants (Linux SCHED_IDLE)."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        pass  # elsewhere, the process's lower priority (niceness) is what there is


def _lower_priority(niceness: int) -> None:
    """Lower this process's CPU priority below the hub's.

    On Linux with autogroup scheduling (the default on desktop and many server kernels),
    each session is scheduled as one group and a process's niceness only counts inside its
    own session; JupyterHub starts every service in a new session, so the session's group
    is lowered too (/proc/self/autogroup), when the session is this service's alone.
    """
    os.nice(niceness)
    try:
        if os.getsid(0) == os.getpid() and os.getsid(0) != os.getsid(os.getppid()):
            with open("/proc/self/autogroup", "w") as autogroup:
                autogroup.write(str(niceness))
    except OSError:
        pass  # no autogroup here: the niceness is what counts


def exit_at_once(code: int) -> None:
    """End the service process with `code` once `serve()` has stopped it cleanly.

    The interpreter's own exit (collecting every module, joining the database threads)
    costs CPU time, and at the service's lowered priority on a busy machine that took
    3-5 s for each service (measured on 2 cores with 2 busy loops), while JupyterHub stops
    its services one after another: a hub stopped 13-18 s. Everything that matters is done
    by then: the server is closed, the loops stopped, the engine disposed and the logs are
    flushed here. Database work still running in the pool is abandoned as a SIGKILL would
    (its transaction is not committed)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class HubService:
    """Settings and lifecycle every service of this package shares."""

    # the service's name in the hub (JUPYTERHUB_SERVICE_NAME), e.g. "usage"
    name = "service"
    # what a person reads of it ("usage", "costs"), for messages
    what = "figures"
    # the custom scope that lets a reader see everyone's figures
    read_all_scope = "custom:service:read-all"
    error_template = "usage/error.html"
    # database work at once; more requests wait for a free worker
    db_workers = 4
    # the service's CPU priority below the hub's (os.nice), so reports never slow logins
    niceness = 10
    # database work (reports) only on CPU nothing else wants (SCHED_IDLE)
    idle_db_work = True
    # reports one person may have running at once (more: 429)
    max_reports_per_person = 2
    # seconds between the background database checks /health reports
    health_interval = 1.0
    # the largest request body any handler reads
    max_body_bytes = 1024 * 1024

    def __init__(self, *, engine: Engine, open_db: sessionmaker, branding: dict[str, Any]):
        self.prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", f"/services/{self.name}/")
        self.base_url = os.environ.get("JUPYTERHUB_BASE_URL", "/")
        self.engine = engine
        self.open_db = open_db
        # the hub's REST API, with this service's token
        self.hub_api = HubAPI.from_environment()
        self.metrics_registry = CollectorRegistry()
        self.pages = Pages(base_url=self.base_url, service_prefix=self.prefix, branding=branding)
        self._pool = ThreadPoolExecutor(
            self.db_workers,
            thread_name_prefix=f"{self.name}-db",
            initializer=_idle_priority if self.idle_db_work else None,
        )
        self.reports_running: dict[str, int] = {}
        self._shared: dict[Hashable, tuple[float, asyncio.Future]] = {}
        self._database: tuple[str, float | None] = ("unchecked", None)

    # --- to be filled in by a service ------------------------------------------------

    def routes(self) -> list[tuple]:
        """(path under the prefix, handler[, kwargs]) for the service's own pages and API."""
        return []

    def update_metrics(self) -> None:
        """Bring gauges up to date before `/metrics` is read."""

    def health_details(self) -> dict[str, Any]:
        return {}

    async def background(self) -> None:
        """Work that runs while the service does (e.g. reconciliation)."""

    def log_request(self, handler: web.RequestHandler) -> bool:
        """False to keep a routine request out of the log."""
        return True

    # --- shared ------------------------------------------------------------------------

    async def run_db(self, work: Callable[..., Any], *args: Any) -> Any:
        """`work(db, *args)` with a fresh database session, in the pool."""

        def run():
            with self.open_db() as db:
                return work(db, *args)

        return await asyncio.get_running_loop().run_in_executor(self._pool, run)

    async def shared_report(self, key: Hashable, work: Callable[[], Awaitable[Any]], ttl: float) -> Any:
        """The result of `work()` for `key`, computed once for every request that asks
        for it while it runs or within `ttl` seconds after: a burst of the same heavy
        report costs one computation."""
        now = time.monotonic()
        for stale in [k for k, (at, _) in self._shared.items() if at + ttl < now and _.done()]:
            del self._shared[stale]
        entry = self._shared.get(key)
        if entry is None:
            entry = (now, asyncio.ensure_future(work()))
            self._shared[key] = entry
            if len(self._shared) > 256:  # bounded: the oldest finished results go first
                for old in [k for k, (_, f) in sorted(self._shared.items(), key=lambda i: i[1][0]) if f.done()][:64]:
                    del self._shared[old]
        future = entry[1]
        try:
            return await asyncio.shield(future)
        except Exception:
            self._shared.pop(key, None)  # a failure is not kept
            raise

    async def check_database(self) -> str:
        """ "ok", or what is wrong with the database."""

        def ping():
            with self.open_db() as db:
                db.execute(text("SELECT 1"))

        try:
            # not in the reports' pool: the check runs however busy that is
            await asyncio.wait_for(asyncio.to_thread(ping), timeout=5)
            return "ok"
        except Exception as e:
            return f"error: {type(e).__name__}"

    async def watch_database(self) -> None:
        """Check the database every `health_interval` seconds, for /health to report."""
        while True:
            self._database = (await self.check_database(), time.monotonic())
            await asyncio.sleep(self.health_interval)

    async def health(self) -> dict[str, Any]:
        """The last database check (made in the background, so /health answers at once,
        however busy the service is), and the service's own details."""
        database, checked = self._database
        if checked is None or time.monotonic() - checked > 5 * self.health_interval + 5:
            database = await self.check_database()
            self._database = (database, time.monotonic())
        return {"status": "ok" if database == "ok" else "error", "database": database, **self.health_details()}

    def _log_request(self, handler: web.RequestHandler) -> None:
        status = handler.get_status()
        if status < 400 and not self.log_request(handler):
            return
        level = logging.INFO if status < 400 else logging.WARNING
        logging.getLogger("tornado.access").log(
            level, "%d %s %.2fms", status, handler._request_summary(), 1000 * handler.request.request_time()
        )

    def application(self) -> web.Application:
        prefix = self.prefix
        secret = hashlib.sha256((os.environ.get("JUPYTERHUB_API_TOKEN", "") + self.name + "-cookie").encode())
        routes = [(prefix + path, *rest) for path, *rest in self.routes()]
        routes += [
            (prefix + "metrics", MetricsHandler),
            (prefix + "health", HealthHandler),
            (prefix + "oauth_callback", HubOAuthCallbackHandler),
        ]
        return web.Application(
            routes,
            cookie_secret=secret.hexdigest(),
            xsrf_cookies=True,
            # as the hub's own cookies: another site's form or image cannot act as the person
            xsrf_cookie_kwargs={"samesite": "Lax"},
            log_function=self._log_request,
            hub_service=self,
            default_handler_class=NotFoundHandler,
            hub_auth=HubOAuth.instance(cookie_options={"samesite": "Lax"}),
        )

    def listen_address(self) -> tuple[int, str]:
        url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101"))
        # a name such as "hub" (zero-to-jupyterhub's hub service) is reached on the pod's
        # own addresses: listen on all of them; an address is listened on as given
        try:
            ipaddress.ip_address(url.hostname)
            host = url.hostname
        except ValueError:
            host = "" if url.hostname != "localhost" else "127.0.0.1"
        return url.port, host

    async def serve(self) -> None:
        """Serve until SIGTERM or SIGINT."""
        port, host = self.listen_address()
        # reports are background work: the hub comes first when the machine is busy
        _lower_priority(self.niceness)
        # a report's thread gives the interpreter back to the event loop every millisecond
        # (not every 5): a /health or a budget check waits less behind a report
        sys.setswitchinterval(0.001)
        # nothing a service is sent is large; handlers that take bodies stream them
        server = HTTPServer(self.application(), xheaders=True, max_body_size=self.max_body_bytes)
        server.listen(port, host)
        log.info(
            "%s service at %s:%s%s, database %s",
            self.name,
            host or "*",
            port,
            self.prefix,
            self.engine.url.render_as_string(hide_password=True),
        )
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopped.set)
        background = asyncio.create_task(self.background())
        watching = asyncio.create_task(self.watch_database())
        await stopped.wait()
        background.cancel()
        watching.cancel()
        server.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.engine.dispose()
