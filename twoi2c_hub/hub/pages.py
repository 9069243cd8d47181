"""The hub's pages: our templates (share/templates) and the variables they read from the
community config."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

from traitlets.config import Config

from .. import catalog, dates, markdown, navigation
from ..config import CommunityConfig
from ..paths import templates_dir
from .environment import SettingError
from .home import HomeFigures


def templates(c: Config, config: CommunityConfig, config_dir: Path) -> None:
    """Our templates first, and their variables: the community's name, logo, links and
    words (Markdown, sanitised), who runs it, and which services' pages to link. A logo
    file (relative to `config_dir`) is served by the hub as its own logo."""
    paths = [str(templates_dir())]
    c.JupyterHub.template_paths = paths + [p for p in c.JupyterHub.get("template_paths", []) if p not in paths]
    # the filters that write dates for the reader's locale (dates.py), in the hub's Jinja
    jinja_options = dict(c.JupyterHub.get("jinja_environment_options", {}))
    extensions = list(jinja_options.get("extensions", []))
    if dates.EXTENSION not in extensions:
        extensions.append(dates.EXTENSION)
    c.JupyterHub.jinja_environment_options = {**jinja_options, "extensions": extensions}
    hub = config.hub
    if hub.logo_file:
        logo = (config_dir / hub.logo_file).resolve()
        if not logo.is_file():
            raise SettingError(f"hub.logo_file: {logo} is not a file")
        c.JupyterHub.logo_file = str(logo)
    template_vars = dict(c.JupyterHub.get("template_vars", {}))
    template_vars.update(
        {
            "community_name": hub.name,
            "community_logo_url": hub.logo_url,
            "community_logo_file": hub.logo_file is not None,  # at {base_url}logo
            "community_url": hub.url,
            "community_support_url": hub.support_url,
            "community_funders": [f.model_dump() for f in hub.funders],
            "community_operated_by": hub.operated_by.model_dump() if hub.operated_by else None,
            "community_designed_by": hub.designed_by.model_dump() if hub.designed_by else None,
            # the community's own words: Markdown, sanitised (markdown.render)
            "community_access_html": markdown.render(hub.access),
            # the one menu (navigation.menu): this person's items, on every hub page
            "twoi2c_menu": functools.partial(navigation.menu_of_user, navigation.Site.of(config)),
            # the home page's figures for its user (home.py), read when the home page asks
            "twoi2c_home": HomeFigures,
            # for the worded "hub is busy" and "hub is full" pages (error.html, 429)
            "twoi2c_active_server_limit": config.spawner.active_server_limit,
            "twoi2c_idle_minutes": config.culling.timeout // 60 if config.culling.enabled else None,
            "twoi2c_profile_names": {
                p["slug"]: p["display_name"] for p in catalog.initialize(copy.deepcopy(config.profile_list()))
            },
        }
    )
    if hub.announcement:
        template_vars["announcement"] = markdown.render(hub.announcement, inline=True)
    c.JupyterHub.template_vars = template_vars
