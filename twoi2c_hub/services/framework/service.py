"""`HubService`: a tornado application run by the hub as a managed service.

A service is a `traitlets.config.Application` (as jupyterhub-idle-culler is): its settings
are traits an operator reads in `--help-all` and sets on the command line
(`--UsageService.db_workers=8`); the hub's command line gives it the community config
(`--config`), from which some settings take their defaults. A service subclass names its
routes, its read-all scope and its templates; this base reads the hub's environment
(`JUPYTERHUB_SERVICE_PREFIX`, `JUPYTERHUB_SERVICE_URL`, `JUPYTERHUB_API_TOKEN`, ...),
holds the one client of the hub's REST API (`hub_api`), adds the OAuth callback,
`/health` and `/metrics`, runs database work in a small thread pool so that the event
loop (and `/health`) always answers, runs its background work with `every()` and stops
cleanly on SIGTERM.
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
from functools import cached_property
from typing import Any
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker
from tornado import web
from tornado.httpserver import HTTPServer
from traitlets import Bool, Float, Integer, Unicode
from traitlets.config import Application

from ...accounting.db import make_engine, session_maker, upgrade
from ...config.loading import ConfigError, load_config
from .handlers import HealthHandler, MetricsHandler, NotFoundHandler
from .hubapi import HubAPI
from .lifecycle import every, stop_with_the_hub
from .pages import Pages, branding

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


class HubService(Application):
    """Settings and lifecycle every service of this package shares.

    `initialize(argv)` reads the command line, `start()` serves until SIGTERM or SIGINT.
    The community config, the database and the rest are made on first use, from the
    settings as they are then (a test constructs a service with settings as keywords)."""

    # the service's name in the hub (JUPYTERHUB_SERVICE_NAME), e.g. "usage"
    name = "service"
    # what a person reads of it ("usage", "costs"), for messages
    what = "figures"
    # the custom scope that lets a reader see everyone's figures
    read_all_scope = "custom:service:read-all"
    # a group lead's scope, filtered to their groups (`...!group=NAME`); None: no group leads
    read_group_scope: str | None = None
    error_template = "usage/error.html"

    aliases = {
        "config": "HubService.community_config",
        "database-url": "HubService.database_url",
    }

    community_config = Unicode(
        "",
        config=True,
        help="""The community config file (the hub's). The hub gives it as `--config`;
        some settings (intervals, prices, budgets) take their defaults from it.""",
    )
    database_url = Unicode(
        config=True,
        help="""The accounting database (SQLAlchemy URL); the hub sets it from the community
        config's `usage.database_url`, in the environment.""",
    )
    db_workers = Integer(
        4,
        config=True,
        help="""Database work (reports) at once; more requests wait for a free worker.""",
    )
    sqlite_page_cache_kib = Integer(
        0,
        min=0,
        config=True,
        help="""Each SQLite connection's page cache, in KiB (0: SQLite's default, 2 MB). The
        system's file cache holds the database's pages as well; a service that reads a few
        pages per request needs little of its own.""",
    )
    niceness = Integer(
        10,
        config=True,
        help="""The service's CPU priority below the hub's (added to its niceness, and to its
        session's autogroup on Linux), so that reports never slow logins and spawns.""",
    )
    idle_db_work = Bool(
        True,
        config=True,
        help="""Run database work (reports) only on CPU nothing else on the machine wants
        (Linux SCHED_IDLE).""",
    )
    max_reports_per_person = Integer(
        2,
        config=True,
        help="""Reports one person may have running at once; more are answered 429.""",
    )
    health_interval = Float(
        1.0,
        config=True,
        help="""Seconds between the background database checks that /health reports.""",
    )
    max_body_bytes = Integer(
        1024 * 1024,
        config=True,
        help="""The largest request body any handler of the service reads (bytes).""",
    )

    @cached_property
    def community(self):
        """The community config, or None when the service was given none."""
        return load_config(self.community_config, overrides=False) if self.community_config else None

    # whether the service brings the database's schema up to date when it starts
    migrates = True

    @cached_property
    def engine(self) -> Engine:
        if self.migrates:
            upgrade(self.database_url)
        return make_engine(self.database_url, self.sqlite_page_cache_kib)

    @cached_property
    def open_db(self) -> sessionmaker:
        return session_maker(self.engine)

    @cached_property
    def hub_api(self) -> HubAPI:
        """The hub's REST API, with this service's token."""
        return HubAPI.from_environment()

    @cached_property
    def metrics_registry(self) -> CollectorRegistry:
        return CollectorRegistry()

    @cached_property
    def pages(self) -> Pages:
        return Pages(base_url=self.base_url, service_prefix=self.prefix, branding=branding(self.community))

    @cached_property
    def _pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(
            self.db_workers,
            thread_name_prefix=f"{self.name}-db",
            initializer=_idle_priority if self.idle_db_work else None,
        )

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", f"/services/{self.name}/")
        self.base_url = os.environ.get("JUPYTERHUB_BASE_URL", "/")
        self.reports_running: dict[str, int] = {}
        self._shared: dict[Hashable, tuple[float, asyncio.Future]] = {}
        self._database: tuple[str, float | None] = ("unchecked", None)
        if kwargs:  # constructed with its settings (not from a command line): ready at once
            self.prepare()

    def prepare(self) -> None:
        """Read the community config and bring the database up to date now, before serving
        (a ConfigError says what is wrong with the config), not at the first request."""
        self.community, self.open_db, self.pages  # noqa: B018 - made on first use

    def start(self) -> None:
        """Serve until SIGTERM or SIGINT."""
        asyncio.run(self.serve())

    @classmethod
    def main(cls, argv: list[str] | None = None) -> int:
        """Run the service from the command line (`argv`, else sys.argv); 1 with a bad
        community config, 0 once stopped."""
        logging.basicConfig(level=logging.INFO, format="[%(levelname)1.1s %(asctime)s %(name)s] %(message)s")
        service = cls()
        service.initialize(argv)
        try:
            service.prepare()
        except ConfigError as e:
            log.error("%s", e)
            return 1
        service.start()
        return 0

    # --- to be filled in by a service ------------------------------------------------

    def routes(self) -> list[tuple]:
        """(path under the prefix, handler[, kwargs]) for the service's own pages and API."""
        return []

    def update_metrics(self) -> None:
        """Bring gauges up to date before `/metrics` is read."""

    def health_details(self) -> dict[str, Any]:
        return {}

    def background(self) -> list[Awaitable[None]]:
        """Work that runs while the service does, each an `every(...)` loop (e.g. the
        reconciliation); cancelled when the service stops."""
        return []

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

    async def note_database(self) -> None:
        self._database = (await self.check_database(), time.monotonic())

    def watch_database(self) -> Awaitable[None]:
        """Check the database every `health_interval` seconds, for /health to report."""
        return every(lambda: self.health_interval, self.note_database, failed="The database check failed")

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

    def stopping(self) -> None:
        """Last work as the service stops, its loops ended and its port closed."""

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
        if stop_with_the_hub(stopped.set):
            log.info("%s service: stops when the hub that started it ends", self.name)
        loops = [asyncio.ensure_future(loop) for loop in [self.watch_database(), *self.background()]]
        await stopped.wait()
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        server.stop()
        self.stopping()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.engine.dispose()
