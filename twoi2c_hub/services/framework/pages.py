"""Pages of a hub service in the hub's own look.

JupyterHub offers services no way to render its templates, so this is the one place
that knows what the hub's `page.html` needs:

- where the hub's templates are: the default of the documented `JupyterHub.data_files_path`
  setting (`<data files>/templates`);
- the names `page.html` reads, which JupyterHub's own handlers provide (`base_url`,
  `user`, `static_url`, `services`, ...). `PAGE_NAMESPACE` lists them, and
  `tests/test_service_framework.py` parses the installed `page.html` and fails if it reads
  a name not listed here: a new JupyterHub that changes the page is caught there, not by
  a person meeting a broken page.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from ... import catalog, dates, navigation
from ...accounting.models import STOP_REASON_WORDS
from ...paths import templates_dir

if TYPE_CHECKING:
    from ...config.models import CommunityConfig

# every name the hub's page.html reads, and what a service page gives it
PAGE_NAMESPACE = (
    "admin_access",
    "announcement",
    "base_url",
    "login_url",
    "logo_url",
    "logout_url",
    "no_spawner_check",
    "parsed_scopes",
    "prefix",
    "service",
    "services",
    "static_url",
    "user",
    "version_hash",
    "xsrf_token",
)


def hub_templates_dir() -> Path:
    """The installed JupyterHub's own templates: where its `data_files_path` setting
    points by default (read from `jupyterhub._data`, as `jupyterhub.app` does, since
    importing `jupyterhub.app` costs a service seconds of start-up)."""
    from jupyterhub._data import DATA_FILES_PATH

    return Path(DATA_FILES_PATH) / "templates"


class PageUser:
    """What the hub's page template reads of the logged-in person (a hub user model)."""

    def __init__(self, model: Mapping[str, Any]):
        self.name = model["name"]
        self.json_escaped_name = json.dumps(self.name)[1:-1]
        self.admin = bool(model.get("admin"))


class Pages:
    """Renders a service's templates: ours (share/templates) over the hub's."""

    def __init__(self, *, base_url: str, service_prefix: str, branding: Mapping[str, Any]):
        self.base_url = base_url
        self.hub_prefix = base_url + "hub/"
        self.service_prefix = service_prefix
        self.branding = dict(branding)
        self.site = self.branding.get("twoi2c_site") or navigation.Site(usage=True, cost=True)
        self.environment = jinja2.Environment(
            loader=jinja2.ChoiceLoader(
                [
                    jinja2.FileSystemLoader(str(templates_dir())),
                    # our page.html extends "templates/page.html", as in the hub
                    jinja2.PrefixLoader({"templates": jinja2.FileSystemLoader(str(hub_templates_dir()))}),
                ]
            ),
            autoescape=True,
            extensions=[dates.LocalDates],  # dates in the reader's locale
        )

    def namespace(self, user: Mapping[str, Any] | None, xsrf_token: str) -> dict[str, Any]:
        hub_prefix = self.hub_prefix

        def static_url(path: str, include_version: bool = True) -> str:
            return f"{hub_prefix}static/{path}"

        values = dict(
            admin_access=False,
            announcement=None,
            base_url=hub_prefix,
            login_url=f"{hub_prefix}login",
            logo_url=None,
            logout_url=f"{hub_prefix}logout",
            no_spawner_check=True,
            parsed_scopes=set(),
            prefix=self.base_url,
            service=None,
            services=[],
            static_url=static_url,
            user=PageUser(user) if user else None,
            version_hash="",
            xsrf_token=xsrf_token,
        )
        assert set(values) == set(PAGE_NAMESPACE)
        values.update(self.branding, service_prefix=self.service_prefix)
        return values

    def render(
        self, name: str, user: Mapping[str, Any] | None, xsrf_token: str, path: str | None = None, **values: Any
    ) -> str:
        """`name` for `user`; `path`: the request's, marking its page in the menu (none on an error)."""
        namespace = self.namespace(user, xsrf_token)
        items = navigation.menu_of_user(self.site, dict(user) if user else None)
        here = navigation.current(items, self.base_url, path)
        namespace.update(twoi2c_menu=items, twoi2c_page=here.path if here else None)
        namespace.update(values)
        return self.environment.get_template(name).render(**namespace)


def branding(community: CommunityConfig | None) -> dict[str, Any]:
    """The community's name, logo, links and funders for the page template, and what its
    menu offers (without a community config: the services' own pages)."""
    hub = community.hub if community else None
    return {
        "twoi2c_site": navigation.Site.of(community) if community else None,
        "community_name": hub.name if hub else os.environ.get("JUPYTERHUB_SERVICE_NAME", "JupyterHub"),
        "community_logo_url": hub.logo_url if hub else None,
        "community_logo_file": bool(hub and hub.logo_file),  # the hub serves it at {base_url}logo
        "community_url": hub.url if hub else None,
        "community_support_url": hub.support_url if hub else None,
        "community_funders": [f.model_dump() for f in hub.funders] if hub else [],
        "community_operated_by": hub.operated_by.model_dump() if hub and hub.operated_by else None,
        "community_designed_by": hub.designed_by.model_dump() if hub and hub.designed_by else None,
        # what people read instead of the names kept in the records
        "profile_names": (
            {p["slug"]: p["display_name"] for p in catalog.initialize(community.profile_list())} if community else {}
        ),
        "stop_reason_words": STOP_REASON_WORDS,
    }
