"""What every hub service of this package shares.

- `HubService`: a `traitlets` Application: the service's settings as traits (listed by
  `--help-all`, set on the command line), the hub's environment, its tornado application
  (with the OAuth callback, `/health` and `/metrics`), database work off the event loop,
  and a clean stop on SIGTERM;
- `lifecycle`: `every`, the one way to run background work every N seconds (a failure is
  logged and counted, the loop goes on), and `exit_at_once` after the clean stop;
- `handlers`: hub OAuth and scopes on every request, one JSON error format
  (`{"code": 400, "message": "...", "parameter": "window"}`), `APIHandler` and `PageHandler`;
- `hubapi`: the one client of the hub's REST API (JupyterHub's pagination, timeouts and
  retries), and `fetch` with the same timeouts and retries for other calls out;
- `params`: typed query parameters whose errors are 400s naming the parameter;
- `pages`: pages in the hub's own look (its `page.html`, our branding).
"""

from .handlers import APIHandler, HealthHandler, MetricsHandler, PageHandler, ServiceHandler, TokenPostHandler
from .hubapi import HubAPI
from .lifecycle import every
from .pages import Pages
from .params import BadParameter
from .service import HubService

__all__ = [
    "APIHandler",
    "BadParameter",
    "HealthHandler",
    "HubAPI",
    "HubService",
    "MetricsHandler",
    "PageHandler",
    "Pages",
    "ServiceHandler",
    "TokenPostHandler",
    "every",
]
