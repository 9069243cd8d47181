"""configure(c, path): the community config file wired into jupyterhub_config.py.

The config itself (its models, its loading and every check-config message) is
`twoi2c_hub.config`; this package turns a loaded config into JupyterHub's settings: the
spawner and its profiles (servers.py), the authenticator (login.py), the templates and
their variables (pages.py), the idle culler and our services (services.py), and the roles
(roles.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

from traitlets.config import Config

from ..config import CommunityConfig, ConfigError, load_config
from ..spawners import refusals
from .environment import SettingError
from .login import authenticator
from .pages import templates
from .roles import roles
from .servers import spawner
from .services import cost_service, culler, fleet_service, usage_service

__all__ = ["SettingError", "configure"]


def configure(c: Config, path: str | Path) -> CommunityConfig:
    """Set the spawner, profiles, authenticator, templates and idle culler from `path`.

    A config file with errors stops the hub at start, with every error and its path
    (the messages `twoi2c-hub check-config` prints), never later at spawn time.
    """
    try:
        config = load_config(path)
    except ConfigError as e:
        print(f"twoi2c-hub: the community config cannot be used.\n{e}", file=sys.stderr)
        raise SystemExit(1) from None
    refusals.install()  # an expected refusal: one WARNING line in the hub's log
    try:
        spawner(c, config)
        authenticator(c, config)
        templates(c, config, Path(path).resolve().parent)
        fleet_service(c, config, Path(path).resolve())
    except SettingError as e:
        print(f"twoi2c-hub: {path}: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    _cookies(c)
    culler(c, config)
    usage_service(c, config, Path(path).resolve())
    cost_service(c, config, Path(path).resolve())
    roles(c, config)  # last: beside the services' roles, and seeing their user scopes
    return config


def _cookies(c: Config) -> None:
    """SameSite=Lax on the hub's cookies (and, through JUPYTERHUB_COOKIE_OPTIONS, the
    services'): another site's form or image cannot act as the person; following a link
    to the hub still works."""
    settings = dict(c.JupyterHub.get("tornado_settings", {}))
    settings["cookie_options"] = {"samesite": "Lax", **settings.get("cookie_options", {})}
    c.JupyterHub.tornado_settings = settings
