"""The `hub:`, `spawner:`, `culling:` and `usage:` sections."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .base import Strict, _error


class Funder(Strict):
    name: str
    url: str | None = None
    logo_url: str | None = None


class HubSection(Strict):
    name: str = Field(min_length=1, max_length=100)
    logo_url: str | None = None
    url: str | None = None
    support_url: str | None = None
    funders: list[Funder] = Field(default_factory=list)
    announcement: str | None = None


class LocalSpawnerSection(Strict):
    """How the local-process spawner applies profiles on this machine."""

    # image name -> the Python executable of an environment with jupyter-server;
    # images not listed are shown as "not available on this hub" and run the default
    images: dict[str, str] = Field(default_factory=dict)
    python: str | None = None  # default: the hub's own Python
    apply_memory_limit: bool = True
    apply_cpu_limit: bool = True


class SpawnerSection(Strict):
    kind: Literal["local", "kube"] = "local"
    default_url: str | None = None
    start_timeout: int = Field(default=120, gt=0)
    # environment for every server; {username} and {escaped_username} are filled in
    user_environment: dict[str, str] = Field(default_factory=dict)
    # environment and (Kubernetes) volume mounts for hub admins only
    admin_environment: dict[str, str] = Field(default_factory=dict)
    admin_volume_mounts: list[dict[str, Any]] = Field(default_factory=list)
    local: LocalSpawnerSection = Field(default_factory=LocalSpawnerSection)

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
    timeout: int = Field(default=3600, gt=0)  # seconds without activity
    every: int = Field(default=0, ge=0)  # seconds between checks; 0: timeout / 2
    max_age: int = Field(default=0, ge=0)  # seconds; 0: no maximum
    cull_users: bool = False
    cull_admin_users: bool = True
    concurrency: int = Field(default=10, ge=1)


class UsageSection(Strict):
    """The usage-accounting service (/services/usage/)."""

    enabled: bool = True
    # SQLite (a path relative to the hub's working directory) or PostgreSQL
    # (postgresql+psycopg://user@host/db); the password, if any, from the environment
    database_url: str = "sqlite:///twoi2c-usage.sqlite"
    reconcile_interval: float = Field(default=30, gt=0)  # seconds
    port: int = Field(default=0, ge=0, le=65535)  # 0: any free port
    # where the proxy reaches the service: 127.0.0.1 when the proxy runs beside the hub;
    # on zero-to-jupyterhub the proxy is another pod: http://hub:PORT (set port too)
    host: str = "127.0.0.1"

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
