"""The `hub:`, `spawner:`, `culling:` and `usage:` sections."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from .base import Strict, _error
from .yamlfile import shown


def _web_link(value: str) -> str:
    """A link or image shown to people: http(s), or a path on this site; never a
    `javascript:` or `data:` address, which would run or smuggle content."""
    if re.match(r"^(https?://[^\s]+|/[^/\s][^\s]*|/)$", value):
        return value
    raise _error(f"must be an http(s) address or a path starting with /, not {shown(value)}")


WebLink = Annotated[str, AfterValidator(_web_link)]


class Funder(Strict):
    name: str
    """The funder's name."""
    url: WebLink | None = None
    """A link to the funder."""
    logo_url: WebLink | None = None
    """The funder's logo."""


class Organisation(Strict):
    """Who operates or designed the hub."""

    name: str = Field(min_length=1, max_length=200)
    """Its name, as people know it."""
    url: WebLink | None = None
    """A link to the organisation."""
    logo_url: WebLink | None = None
    """Its logo."""


class HubSection(Strict):
    name: str = Field(min_length=1, max_length=100)
    """The community's name, shown on every page."""
    logo_url: WebLink | None = None
    """The community's logo (top left of every page and on the login page), as a link."""
    logo_file: Path | None = None
    """Or the logo as an image file on the hub's machine (SVG, PNG, JPEG; a path relative
    to this config file), served by the hub itself at {base_url}hub/logo."""
    url: WebLink | None = None
    """Where the logo links to: the community's own site."""
    support_url: WebLink | None = None
    """Where people get help with this hub (in every page's footer)."""
    funders: list[Funder] = Field(default_factory=list)
    """Who funds the hub (in every page's footer)."""
    announcement: str | None = None
    """A message shown at the top of every page, in Markdown (links, emphasis, lists; any
    HTML in it is shown as text)."""
    operated_by: Organisation | None = None
    """Who runs the hub (on the login and home pages)."""
    designed_by: Organisation | None = None
    """Who designed it, e.g. the community itself or a partner."""
    access: str | None = None
    """Who may use the hub and how to get access, in Markdown (on the login page, and on
    the refusal page of someone who may not log in)."""

    @model_validator(mode="after")
    def _one_logo(self):
        if self.logo_url and self.logo_file:
            raise _error("give the logo as logo_url or as logo_file, not both")
        return self


class LocalSpawnerSection(Strict):
    """How the local-process spawner applies profiles on this machine."""

    images: dict[str, str] = Field(default_factory=dict)
    """Image name -> the Python executable of an environment with jupyter-server; other
    images are shown as not available on this hub and run the default."""
    python: str | None = None
    """The Python of servers whose image is not listed (default: the hub's own)."""
    apply_memory_limit: bool = True
    """Limit each server's address space to its profile's mem_limit."""
    apply_cpu_limit: bool = True
    """Pin each server to ceil(cpu_limit) cores."""
    system_users: bool = True
    """Run each server as the Unix user of the person's name (JupyterHub's
    LocalProcessSpawner); false: every server runs as `server_user`."""
    server_user: str | None = None
    """With `system_users: false` and a hub run as root: the one unprivileged Unix user
    every server runs as, so that no notebook can read the hub's or the services' secrets
    (`twoi2c-hub server-account` makes one). Unset: servers run as the hub's user."""
    home_dir_template: str = "/srv/twoi2c-homes/{username}"
    """Each server's HOME with `system_users: false` ({username}: the escaped name); the
    directory above must be reachable (searchable) by `server_user`."""

    @model_validator(mode="after")
    def _one_way_to_run_servers(self):
        if self.system_users and self.server_user:
            raise _error("server_user applies only with system_users: false")
        return self


INTERFACE_URLS = {"lab": "/lab", "notebook": "/tree", "rstudio": "/rstudio"}
INTERFACE_NAMES = {"lab": "JupyterLab", "notebook": "Jupyter Notebook", "rstudio": "RStudio"}


class Interface(Strict):
    """A way a server can open, offered on the spawn page."""

    name: Literal["lab", "notebook", "rstudio"]
    """`lab` (JupyterLab, /lab), `notebook` (classic Notebook, /tree) or `rstudio` (/rstudio,
    through jupyter-rsession-proxy, which the image must have)."""
    display_name: str | None = None
    """What the spawn page calls it (default: JupyterLab, Jupyter Notebook, RStudio)."""
    url: str | None = None
    """Where it opens, inside the server (default as above)."""
    images: list[str] = Field(default_factory=list)
    """The images that have it (shell-style patterns, e.g. `quay.io/jupyter/r-notebook*`);
    empty: every image."""


class SpawnerSection(Strict):
    kind: Literal["local", "kube"] = "local"
    """`kube`: ProfileKubeSpawner (Kubernetes); `local`: ProfileLocalSpawner (processes on this machine)."""
    default_url: str | None = None
    """Where a server opens, e.g. /lab."""
    start_timeout: int = Field(default=120, gt=0)
    """Seconds a server may take to start."""
    user_environment: dict[str, str] = Field(default_factory=dict)
    """Environment of every server; {username} and {escaped_username} are filled in."""
    admin_environment: dict[str, str] = Field(default_factory=dict)
    """Environment added to hub admins' servers only."""
    admin_volume_mounts: list[dict[str, Any]] = Field(default_factory=list)
    """Kubernetes volume mounts added to hub admins' servers only."""
    oauth_client_allowed_scopes: list[str] = Field(default_factory=list)
    """Scopes a server's token may have beyond its own (JupyterHub's
    `Spawner.oauth_client_allowed_scopes`), e.g. `access:services` for the services."""
    local: LocalSpawnerSection = Field(default_factory=LocalSpawnerSection)
    """Settings of the local-process spawner."""
    interfaces: list[Interface] = Field(default_factory=list)
    """The interfaces people choose between on the spawn page (the first is the default);
    empty: no choice, servers open at `default_url`."""
    concurrent_starts: int = Field(default=0, ge=0)
    """Servers that start at the same time; more wait in line, first come first served,
    and the spawn page tells each person their place and about how long (0: no line)."""
    concurrent_spawn_limit: int = Field(default=100, ge=0)
    """JupyterHub's limit on servers starting or waiting in line at once; beyond it people
    are asked, in plain words, to try again shortly (0: no limit)."""
    active_server_limit: int = Field(default=0, ge=0)
    """JupyterHub's limit on servers running at once; beyond it people are told the hub is
    full (0: no limit)."""
    form: Literal["cards", "fancy-profiles"] = "cards"
    """How the spawn page draws the profiles: `cards` (ours, with prices and plain-word
    resources; works without JavaScript) or `fancy-profiles` (2i2c's
    jupyterhub-fancy-profiles: `pip install twoi2c-hub[fancy-profiles]`). Either way people
    see only their own profiles and every start is checked on the hub."""

    def interface_list(self) -> list[dict[str, Any]]:
        """The interfaces as the spawners take them, defaults filled in."""
        return [
            {
                "name": i.name,
                "display_name": i.display_name or INTERFACE_NAMES[i.name],
                "url": i.url or INTERFACE_URLS[i.name],
                "images": list(i.images),
            }
            for i in self.interfaces
        ]

    @model_validator(mode="after")
    def _line_inside_the_limit(self):
        if self.concurrent_spawn_limit and self.concurrent_starts > self.concurrent_spawn_limit:
            raise _error(
                f"concurrent_starts ({self.concurrent_starts}) is more than concurrent_spawn_limit "
                f"({self.concurrent_spawn_limit}): the starting servers count against that limit too"
            )
        return self

    @field_validator("user_environment", "admin_environment")
    @classmethod
    def _placeholders(cls, value):
        for name, template in value.items():
            for field_name in re.findall(r"\{([^{}]*)\}", template):
                if field_name not in ("username", "escaped_username"):
                    raise _error(
                        f"{name}: unknown placeholder {{{field_name}}}; use {{username}} or {{escaped_username}}"
                    )
        return value


class CullingSection(Strict):
    enabled: bool = True
    """Run jupyterhub-idle-culler as a hub service."""
    timeout: int = Field(default=3600, gt=0)
    """Seconds without activity before a server is stopped."""
    every: int = Field(default=0, ge=0)
    """Seconds between checks; 0: timeout / 2."""
    max_age: int = Field(default=0, ge=0)
    """Seconds after which a server is stopped even if active; 0: no maximum."""
    cull_users: bool = False
    """Also delete users who have been idle (not only their servers)."""
    cull_admin_users: bool = True
    """Also stop hub admins' servers."""
    concurrency: int = Field(default=10, ge=1)
    """Requests to the hub at once."""


class UsageSection(Strict):
    """The usage-accounting service (/services/usage/)."""

    enabled: bool = True
    """Run the usage service at /services/usage/."""
    database_url: str = "sqlite:///twoi2c-usage.sqlite"
    """sqlite:///PATH (relative to the hub's directory) or postgresql+psycopg://user@host/db;
    the password, if any, from the environment."""
    retention_months: int | None = Field(default=None, ge=1)
    """Unname what is older than this many months: each person's old sessions, memberships
    and rollups are kept under a pseudonym of their own, so every total stays (checked
    every few hours). Unset: names are kept until `twoi2c-hub forget USER`."""
    reconcile_interval: float = Field(default=30, gt=0)
    """Seconds between reconciliations with the hub."""
    measure_interval: float = Field(default=30, ge=0)
    """Seconds between samples of what each running server uses (CPU, memory), as against
    what it reserved; 0: not measured."""
    prometheus_url: str | None = Field(default=None, pattern=r"^https?://")
    """On Kubernetes: the cluster's Prometheus (e.g. http://prometheus-server.monitoring),
    from which each server's pod is measured (cAdvisor's CPU and working-set memory,
    DCGM's GPU utilisation). Unset: only local servers are measured."""
    port: int = Field(default=0, ge=0, le=65535)
    """The service's port; 0: any free port."""
    host: str = "127.0.0.1"
    """Where the proxy reaches the service: 127.0.0.1 beside the hub; on zero-to-jupyterhub
    the hub's service name (and set port)."""
    fleet_secret_env: str | None = None
    """For a hub in a fleet: the environment variable holding the fleet secret (the fleet's
    `secret_env`, the same on every hub; at least 32 bytes in hex, `openssl rand -hex 32`).
    The service then gives the fleet each UTC day's people as keyed digests, never names
    (api/v1/people-digests, for admins and the read-all scope), and refuses to start when
    the variable is unset, not hex or too short. Unset: not part of a fleet."""

    @field_validator("fleet_secret_env")
    @classmethod
    def _variable_name(cls, value):
        if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise _error(
                f"must be an environment variable's name (letters, digits and _, not starting with a digit), "
                f"not {shown(value)}"
            )
        return value

    @model_validator(mode="after")
    def _fixed_port_off_loopback(self):
        if self.host not in ("127.0.0.1", "localhost") and not self.port:
            raise _error("set port: a fixed port is needed when host is not 127.0.0.1")
        return self

    @field_validator("database_url")
    @classmethod
    def _supported(cls, value):
        if not value.startswith(("sqlite:///", "postgresql")):
            raise _error("must be a sqlite:///PATH or postgresql+psycopg://... URL")
        return value


class HomeStorageSection(Strict):
    """Where people's home directory sizes come from, for home storage cost."""

    source: Literal["local", "prometheus"] = "local"
    """`local`: measure the subdirectories of `directory` (the local spawner's homes);
    `prometheus`: query a per-directory size metric, such as the one 2i2c's home-storage
    exporter publishes."""
    directory: str | None = None
    """For `local`: the directory whose subdirectories are homes, named by escaped username."""
    prometheus_url: str | None = None
    """For `prometheus`: the server's URL, e.g. http://prometheus-server."""
    query: str = "max by (directory) (dirsize_total_size_bytes)"
    """For `prometheus`: an instant query giving bytes per home."""
    label: str = "directory"
    """For `prometheus`: the label naming the home (its escaped username)."""
    interval: float = Field(default=3600, gt=0)
    """Seconds between measures."""

    @model_validator(mode="after")
    def _where(self):
        if self.source == "local" and not self.directory:
            raise _error("give the directory of the homes")
        if self.source == "prometheus" and not self.prometheus_url:
            raise _error("give prometheus_url")
        return self


class CostSection(Strict):
    """The cost service (/services/cost/), run when `pricing:` is given; it reads the
    usage service's database."""

    enabled: bool = True
    """Run the cost service when there are prices."""
    rollup_interval: float = Field(default=60, gt=0)
    """Seconds between adding newly closed sessions to the daily cost rollups."""
    port: int = Field(default=0, ge=0, le=65535)
    """The service's port; 0: any free port."""
    host: str = "127.0.0.1"
    """Where the proxy reaches the service (see usage.host)."""
    home_storage: HomeStorageSection | None = None
    """Measure home directories and charge them at `pricing` `home_gib_month`."""

    @model_validator(mode="after")
    def _fixed_port_off_loopback(self):
        if self.host not in ("127.0.0.1", "localhost") and not self.port:
            raise _error("set port: a fixed port is needed when host is not 127.0.0.1")
        return self


class FleetViewSection(Strict):
    """The fleet's pages and API on this hub (/services/fleet/), for an operator who runs a
    hub for each of many communities: every hub's active users and money in one view."""

    config: str
    """The fleet config (`fleet.yaml`, docs/fleet.md), relative to this file's folder."""
    operator_groups: list[str] = Field(min_length=1)
    """The groups who may read the fleet's figures (and hub admins); no one else sees it."""
    collect_interval: float = Field(default=3600, ge=0)
    """Seconds between collections from the fleet's hubs; 0: the service never collects
    (`twoi2c-hub fleet collect` run on a schedule of your own does)."""
    port: int = Field(default=0, ge=0, le=65535)
    """The service's port; 0: any free port."""
    host: str = "127.0.0.1"
    """Where the proxy reaches the service (see usage.host)."""

    @model_validator(mode="after")
    def _fixed_port_off_loopback(self):
        if self.host not in ("127.0.0.1", "localhost") and not self.port:
            raise _error("set port: a fixed port is needed when host is not 127.0.0.1")
        return self
