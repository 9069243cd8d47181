"""The usage service: a hub-managed tornado app at /services/usage/.

Run by the hub (configure() adds it to c.JupyterHub.services) as
`python -m twoi2c_hub.services.usage --config community.yaml`; it reads the hub's
environment (JUPYTERHUB_API_TOKEN, JUPYTERHUB_SERVICE_URL, ...) and its own
(TWOI2C_USAGE_DATABASE_URL, TWOI2C_USAGE_EVENTS_TOKEN, TWOI2C_USAGE_RECONCILE_INTERVAL).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import ipaddress
import json
import logging
import os
import signal
from pathlib import Path
from urllib.parse import urlparse

import jinja2
from jupyterhub._data import DATA_FILES_PATH
from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler
from tornado import web
from tornado.httpserver import HTTPServer

from ...accounting.db import make_engine, session_maker, upgrade
from ...config.loading import ConfigError, load_config
from ...paths import templates_dir
from . import handlers
from .collector import Collector, Metrics

log = logging.getLogger("twoi2c.usage")

DEFAULT_DATABASE_URL = "sqlite:///twoi2c-usage.sqlite"


def chart_library_dir() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data"


def _log_request(handler: web.RequestHandler) -> None:
    # the spawners' events are many and routine: log them only when they fail
    status = handler.get_status()
    if isinstance(handler, handlers.EventsAPI) and status < 400:
        return
    level = logging.INFO if status < 400 else logging.WARNING
    logging.getLogger("tornado.access").log(
        level, "%d %s %.2fms", status, handler._request_summary(), 1000 * handler.request.request_time())


class PageUser:
    """What JupyterHub's page template needs of the logged-in person."""

    def __init__(self, model: dict):
        self.name = model["name"]
        self.json_escaped_name = json.dumps(self.name)[1:-1]
        self.admin = bool(model.get("admin"))


class UsageService:
    def __init__(self, *, community_config: str | None, database_url: str, interval: float):
        self.community = load_config(community_config) if community_config else None
        self.prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/usage/")
        self.base_url = os.environ.get("JUPYTERHUB_BASE_URL", "/")
        self.hub_prefix = self.base_url + "hub/"
        self.events_token = os.environ.get("TWOI2C_USAGE_EVENTS_TOKEN", "")
        upgrade(database_url)
        self.engine = make_engine(database_url)
        self.sessions = session_maker(self.engine)
        self.metrics = Metrics()
        self.collector = Collector(
            self.sessions,
            hub_api_url=os.environ.get("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api"),
            api_token=os.environ.get("JUPYTERHUB_API_TOKEN", ""),
            catalog=self.community.profile_list() if self.community else [],
            interval=interval, metrics=self.metrics,
        )
        self.templates = jinja2.Environment(
            loader=jinja2.ChoiceLoader([
                jinja2.FileSystemLoader(str(templates_dir())),
                jinja2.PrefixLoader({"templates": jinja2.FileSystemLoader(os.path.join(DATA_FILES_PATH, "templates"))}),
            ]),
            autoescape=True,
        )

    def template_vars(self) -> dict:
        hub = self.community.hub if self.community else None
        return {
            "community_name": hub.name if hub else "Usage",
            "community_logo_url": hub.logo_url if hub else None,
            "community_url": hub.url if hub else None,
            "community_support_url": hub.support_url if hub else None,
            "community_funders": [f.model_dump() for f in hub.funders] if hub else [],
            "announcement": None,
        }

    def render(self, name: str, handler: web.RequestHandler, **values) -> str:
        model = handler.current_user
        hub_prefix = self.hub_prefix

        def static_url(path, include_version=True):
            return f"{hub_prefix}static/{path}"

        namespace = dict(
            base_url=hub_prefix, prefix=self.base_url, user=PageUser(model) if model else None,
            login_url=f"{hub_prefix}login", logout_url=f"{hub_prefix}logout", static_url=static_url,
            services=[], parsed_scopes=set(), xsrf_token=handler.xsrf_token.decode(), version_hash="",
            no_spawner_check=True, admin_access=False, logo_url=None, service_prefix=self.prefix,
            **self.template_vars(),
        )
        namespace.update(values)
        return self.templates.get_template(name).render(**namespace)

    def application(self) -> web.Application:
        prefix = self.prefix
        secret = hashlib.sha256((os.environ.get("JUPYTERHUB_API_TOKEN", "") + "usage-cookie").encode()).hexdigest()
        return web.Application(
            [
                (prefix, handlers.UserPage),
                (prefix + "admin", handlers.AdminPage),
                (prefix + "api/v1/allocation", handlers.AllocationAPI),
                (prefix + "api/v1/sessions", handlers.SessionsAPI),
                (prefix + "api/v1/active-users", handlers.ActiveUsersAPI),
                (prefix + "api/v1/events", handlers.EventsAPI),
                (prefix + "metrics", handlers.MetricsHandler),
                (prefix + "health", handlers.HealthHandler),
                (prefix + "oauth_callback", HubOAuthCallbackHandler),
                (prefix + r"static/(plotly\.min\.js)", handlers.StaticHandler, {"path": str(chart_library_dir())}),
            ],
            cookie_secret=secret,
            xsrf_cookies=True,
            log_function=_log_request,
            usage_service=self,
            hub_auth=HubOAuth.instance(),
        )

    async def reconcile_forever(self):
        while True:
            try:
                await self.collector.reconcile()
            except Exception:
                self.metrics.errors.labels("reconcile").inc()
                log.exception("Reconciliation failed; will try again")
            await asyncio.sleep(self.collector.interval)


async def serve(args) -> None:
    service = UsageService(community_config=args.config, database_url=args.database_url, interval=args.interval)
    url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101"))
    server = HTTPServer(service.application(), xheaders=True)
    # a name such as "hub" (zero-to-jupyterhub's hub service) is reached on the pod's own
    # addresses: listen on all of them; an address is listened on as given
    try:
        ipaddress.ip_address(url.hostname)
        host = url.hostname
    except ValueError:
        host = "" if url.hostname != "localhost" else "127.0.0.1"
    server.listen(url.port, host)
    log.info("Usage service at %s%s, database %s, reconciling every %ss",
             url.geturl(), service.prefix, service.engine.url.render_as_string(hide_password=True), args.interval)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    reconciling = asyncio.create_task(service.reconcile_forever())
    await stopped.wait()
    reconciling.cancel()
    server.stop()
    service.engine.dispose()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m twoi2c_hub.services.usage")
    parser.add_argument("--config", help="the community config file (profiles resolve reconciled sessions)")
    parser.add_argument("--database-url", default=os.environ.get("TWOI2C_USAGE_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--interval", type=float,
                        default=float(os.environ.get("TWOI2C_USAGE_RECONCILE_INTERVAL", "30")),
                        help="seconds between reconciliations with the hub")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(levelname)1.1s %(asctime)s %(name)s] %(message)s")
    try:
        asyncio.run(serve(args))
    except ConfigError as e:
        log.error("%s", e)
        return 1
    return 0
