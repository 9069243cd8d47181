"""configure(c, path): the community config file, wired into jupyterhub_config.py."""

from __future__ import annotations

import sys

from ..paths import templates_dir
from .loading import ConfigError, load_config
from .models import CommunityConfig

IDLE_CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]


def configure(c, path) -> CommunityConfig:
    """Set the spawner, profiles, authenticator, templates and idle culler from `path`.

    A config file with errors stops the hub at start, with every error and its path
    (the messages `twoi2c-hub check-config` prints), never later at spawn time.
    """
    try:
        config = load_config(path)
    except ConfigError as e:
        print(f"twoi2c-hub: the community config cannot be used.\n{e}", file=sys.stderr)
        raise SystemExit(1) from None
    _spawner(c, config)
    _authenticator(c, config)
    _templates(c, config)
    _culler(c, config)
    return config


def _spawner(c, config: CommunityConfig) -> None:
    spawner = config.spawner
    if spawner.kind == "kube":
        from ..spawners.kube import ProfileKubeSpawner as cls

        section = c.ProfileKubeSpawner
        if spawner.admin_volume_mounts:
            section.admin_volume_mounts = spawner.admin_volume_mounts
    else:
        from ..spawners.local import ProfileLocalSpawner as cls

        section = c.ProfileLocalSpawner
        local = spawner.local
        section.images = local.images
        if local.python:
            section.python = local.python
        section.apply_memory_limit = local.apply_memory_limit
        section.apply_cpu_limit = local.apply_cpu_limit
    c.JupyterHub.spawner_class = cls
    section.profile_list = config.profile_list()
    section.user_environment = spawner.user_environment
    section.admin_environment = spawner.admin_environment
    section.start_timeout = spawner.start_timeout
    if spawner.default_url:
        section.default_url = spawner.default_url


def _authenticator(c, config: CommunityConfig) -> None:
    auth = config.auth
    if auth.provider == "demo":
        from ..authenticators.demo import DemoAuthenticator

        c.JupyterHub.authenticator_class = DemoAuthenticator
        c.DemoAuthenticator.users = {name: user.model_dump() for name, user in auth.users.items()}
    if auth.admin_users:
        c.Authenticator.admin_users = set(auth.admin_users)
    if auth.blocked_users:
        c.Authenticator.blocked_users = set(auth.blocked_users)


def _templates(c, config: CommunityConfig) -> None:
    paths = [str(templates_dir())]
    c.JupyterHub.template_paths = paths + [p for p in c.JupyterHub.get("template_paths", []) if p not in paths]
    hub = config.hub
    template_vars = dict(c.JupyterHub.get("template_vars", {}))
    template_vars.update({
        "community_name": hub.name,
        "community_logo_url": hub.logo_url,
        "community_url": hub.url,
        "community_support_url": hub.support_url,
        "community_funders": [f.model_dump() for f in hub.funders],
    })
    if hub.announcement:
        template_vars["announcement"] = hub.announcement
    c.JupyterHub.template_vars = template_vars


def _culler(c, config: CommunityConfig) -> None:
    culling = config.culling
    if not culling.enabled:
        return
    # idle-culler 2.0 takes boolean flags with a value (`--cull-users=true`), not bare
    command = [
        sys.executable, "-m", "jupyterhub_idle_culler",
        f"--timeout={culling.timeout}",
        f"--cull-every={culling.every}",
        f"--max-age={culling.max_age}",
        f"--concurrency={culling.concurrency}",
        f"--cull-users={str(culling.cull_users).lower()}",
        f"--cull-admin-users={str(culling.cull_admin_users).lower()}",
    ]
    scopes = list(IDLE_CULLER_SCOPES)
    if culling.cull_users:
        scopes.append("admin:users")
    services = [s for s in c.JupyterHub.get("services", []) if s.get("name") != "idle-culler"]
    c.JupyterHub.services = services + [{"name": "idle-culler", "command": command}]
    roles = [r for r in c.JupyterHub.get("load_roles", []) if r.get("name") != "idle-culler"]
    c.JupyterHub.load_roles = roles + [{
        "name": "idle-culler",
        "description": "Stop servers that have been idle too long (jupyterhub-idle-culler)",
        "scopes": scopes,
        "services": ["idle-culler"],
    }]
