"""configure(c, path): the community config file, wired into jupyterhub_config.py."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from ..network import free_port
from ..spawners import refusals
from ..usage_client import UsageEventPoster
from .access import external_authenticator, roles
from .base import SettingError
from .loading import ConfigError, load_config
from .models import CommunityConfig, GitHubAuth, WorkshopAuth
from .pages import fancy_profiles, templates

PG_ENVIRONMENT = ("PGPASSWORD", "PGSSLMODE", "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY")
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
    refusals.install()  # an expected refusal: one WARNING line in the hub's log
    try:
        _spawner(c, config)
        _authenticator(c, config)
        templates(c, config, Path(path).resolve().parent)
    except SettingError as e:
        print(f"twoi2c-hub: {path}: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    _cookies(c)
    _culler(c, config)
    _usage_service(c, config, Path(path).resolve())
    _cost_service(c, config, Path(path).resolve())
    roles(c, config)  # last: beside the services' roles, and seeing their user scopes
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
        section.system_users = local.system_users
        if local.server_user:
            section.server_user = local.server_user
        section.home_dir_template = local.home_dir_template
    c.JupyterHub.spawner_class = cls
    section.profile_list = config.profile_list()
    section.user_environment = spawner.user_environment
    section.admin_environment = spawner.admin_environment
    section.start_timeout = spawner.start_timeout
    if spawner.oauth_client_allowed_scopes:
        section.oauth_client_allowed_scopes = list(spawner.oauth_client_allowed_scopes)
    if spawner.default_url:
        section.default_url = spawner.default_url
    section.interfaces = spawner.interface_list()
    section.spawn_form = spawner.form
    section.concurrent_starts = spawner.concurrent_starts
    c.JupyterHub.concurrent_spawn_limit = spawner.concurrent_spawn_limit
    c.JupyterHub.active_server_limit = spawner.active_server_limit
    if spawner.form == "fancy-profiles":
        fancy_profiles(c)


def _secret(variable: str, what: str) -> str:
    value = os.environ.get(variable, "")
    if not value:
        raise SettingError(f"{what}: set the environment variable {variable}")
    return value


def _authenticator(c, config: CommunityConfig) -> None:
    auth = config.auth
    if auth.provider == "demo":
        from ..authenticators.demo import DemoAuthenticator

        c.JupyterHub.authenticator_class = DemoAuthenticator
        c.DemoAuthenticator.users = {name: user.model_dump() for name, user in auth.users.items()}
    elif auth.provider == "workshop":
        _workshop(c, auth)
    elif auth.provider == "external":
        external_authenticator(c, auth)
    else:
        _oauth(c, auth)
    section = c.Authenticator
    if auth.admin_users:
        section.admin_users = set(auth.admin_users)
    if auth.blocked_users:
        section.blocked_users = set(auth.blocked_users)
    if auth.allowed_users:
        section.allowed_users = set(auth.allowed_users)
    if auth.allow_all:
        section.allow_all = True
    section.auth_refresh_age = auth.refresh_age


def _oauth(c, auth) -> None:
    from ..authenticators import cilogon, github, oidc

    cls = {
        "github": github.GitHubOAuthenticator,
        "cilogon": cilogon.CILogonOAuthenticator,
        "oidc": oidc.GenericOAuthenticator,
    }[auth.provider]
    c.JupyterHub.authenticator_class = cls
    section = c[cls.__name__]
    section.client_id = auth.client_id
    section.client_secret = _secret(auth.client_secret_env, f"auth.client_id ({auth.provider})")
    if auth.callback_url:
        section.oauth_callback_url = auth.callback_url
    section.explain_refusals = True
    section.group_patterns = auth.groups.import_
    section.group_renames = auth.groups.rename
    section.group_prefix = auth.groups.prefix
    section.staff_users = auth.staff_users
    section.anonymize_usernames = auth.anonymize_usernames
    section.provider_down_policy = auth.provider_down
    if auth.anonymize_usernames:
        _secret("TWOI2C_USERNAME_SECRET", "auth.anonymize_usernames")
    if auth.refresh_age:
        # refreshing groups needs the provider's tokens, kept encrypted in auth_state
        _secret("JUPYTERHUB_CRYPT_KEY", f"auth.refresh_age ({auth.refresh_age} s; 0 refreshes only at login)")
        section.enable_auth_state = True
    if auth.gives_groups():
        section.manage_groups = True
        if auth.allowed_groups:
            section.allowed_groups = set(auth.allowed_groups)
        if auth.admin_groups:
            section.admin_groups = set(auth.admin_groups)
    if auth.provider == "github":
        github = auth.github or GitHubAuth()
        section.allowed_organizations = set(github.allowed_organizations)
        section.teams_as_groups = github.teams_as_groups
        if github.teams_as_groups or any(":" in o for o in github.allowed_organizations):
            section.scope = ["read:org"]
    elif auth.provider == "cilogon":
        section.idps = auth.cilogon.idps
        if auth.cilogon.groups_claim:
            section.groups_claim = auth.cilogon.groups_claim
    else:
        oidc = auth.oidc
        section.discovery_url = oidc.discovery_url
        section.username_claim = oidc.username_claim
        section.scope = oidc.scopes
        if oidc.groups_claim:
            section.groups_claim = oidc.groups_claim
        section.groups_from_scopes = oidc.groups_from_scopes


def _workshop(c, auth) -> None:
    from ..authenticators.workshop import WorkshopAuthenticator

    workshop = auth.workshop or WorkshopAuth()
    c.JupyterHub.authenticator_class = WorkshopAuthenticator
    section = c.WorkshopAuthenticator
    section.user_password = _secret(workshop.password_env, "auth.workshop.password_env")
    if workshop.admin_password_env:
        section.admin_password = _secret(workshop.admin_password_env, "auth.workshop.admin_password_env")
    section.allow_all = True
    if workshop.opens:
        section.opens = workshop.opens.isoformat()
    if workshop.closes:
        section.closes = workshop.closes.isoformat()
    if workshop.group:
        section.attendee_group = workshop.group
    section.temporary_accounts = workshop.temporary_accounts
    section.max_failures = workshop.max_failures
    section.failure_window = workshop.failure_window
    section.global_max_failures = workshop.global_max_failures
    section.trusted_proxies = workshop.trusted_proxies
    c.JupyterHub.template_vars = {
        **c.JupyterHub.get("template_vars", {}),
        "workshop_temporary_accounts": workshop.temporary_accounts,
        "workshop_closes": workshop.closes.isoformat(timespec="minutes") if workshop.closes else None,
    }


def _cookies(c) -> None:
    """SameSite=Lax on the hub's cookies (and, through JUPYTERHUB_COOKIE_OPTIONS, the
    services'): another site's form or image cannot act as the person; following a link
    to the hub still works."""
    settings = dict(c.JupyterHub.get("tornado_settings", {}))
    settings["cookie_options"] = {"samesite": "Lax", **settings.get("cookie_options", {})}
    c.JupyterHub.tornado_settings = settings


def _culler(c, config: CommunityConfig) -> None:
    culling = config.culling
    if not culling.enabled:
        return
    # idle-culler 2.0 takes boolean flags with a value (`--cull-users=true`), not bare
    command = [
        sys.executable,
        "-m",
        "jupyterhub_idle_culler",
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
    _service(
        c,
        {"name": "idle-culler", "command": command},
        {
            "name": "idle-culler",
            "description": "Stop servers that have been idle too long (jupyterhub-idle-culler)",
            "scopes": scopes,
            "services": ["idle-culler"],
        },
    )


READ_ALL_USAGE = "custom:usage:read-all"
READ_ALL_COST = "custom:cost:read-all"


def _service(c, service: dict, role: dict | None) -> None:
    """Add (or replace) a hub-managed service, and the role with the scopes it needs."""
    name = service["name"]
    # the database's password and TLS settings reach the services as they reach the hub
    # (libpq's variables: a URL in the config file carries no password)
    if "environment" in service:
        service["environment"].update({k: os.environ[k] for k in PG_ENVIRONMENT if k in os.environ})
    c.JupyterHub.services = [s for s in c.JupyterHub.get("services", []) if s.get("name") != name] + [service]
    if role:
        c.JupyterHub.load_roles = [r for r in c.JupyterHub.get("load_roles", []) if r.get("name") != role["name"]]
        c.JupyterHub.load_roles = c.JupyterHub.load_roles + [role]


def _usage_service(c, config: CommunityConfig, config_path: Path) -> None:
    usage = config.usage
    if not usage.enabled:
        return
    port = usage.port or free_port()
    # shared with the spawners for their start/stop events; new at every hub start
    events_token = secrets.token_hex(32)
    _service(
        c,
        {
            "name": "usage",
            "display": True,
            "info": {"description": "Server usage for each person and for the community"},
            "url": f"http://{usage.host}:{port}",
            "command": [sys.executable, "-m", "twoi2c_hub.services.usage", "--config", str(config_path)],
            "environment": {
                "TWOI2C_USAGE_EVENTS_TOKEN": events_token,
                "TWOI2C_USAGE_DATABASE_URL": usage.database_url,
                "TWOI2C_USAGE_RECONCILE_INTERVAL": str(usage.reconcile_interval),
            },
            "oauth_no_confirm": True,
            "oauth_client_allowed_scopes": [READ_ALL_USAGE],
        },
        {
            "name": "usage-service",
            "description": "Read servers and groups to reconcile recorded sessions",
            "scopes": ["list:users", "read:users", "read:servers"],
            "services": ["usage"],
        },
    )
    _readers(
        c,
        "usage-readers",
        READ_ALL_USAGE,
        "everyone's usage",
        "usage",
        list(config.community_admin_groups),
    )
    spawner = c.ProfileKubeSpawner if config.spawner.kind == "kube" else c.ProfileLocalSpawner
    # {base_url}: the hub's, filled in when an event is sent (usage_client.hub_url)
    events_url = f"http://127.0.0.1:{port}{{base_url}}services/usage/api/v1/events"
    spawner.usage_events_url = events_url
    spawner.usage_events_token = events_token
    if config.auth.provider in ("github", "cilogon", "oidc", "external"):
        # group changes at login and refresh, dated exactly (the service also reads groups
        # from the hub at every reconciliation)
        authenticator = c.JupyterHub.authenticator_class.__name__
        c[authenticator].group_change_hook = UsageEventPoster(events_url, events_token)


def _readers(c, name: str, scope: str, what: str, service: str, groups: list[str]) -> None:
    """The custom scope to read `what` (everyone's figures) in `service`, given to
    `groups`, and every user's access to the service (to read their own)."""
    description = f"Read {what} in the {service} service"
    c.JupyterHub.custom_scopes = {**c.JupyterHub.get("custom_scopes", {}), scope: {"description": description}}
    role = {
        "name": name,
        "description": f"Community admins: {what}",
        "scopes": [scope, f"access:services!service={service}"],
        "groups": groups,
    }
    c.JupyterHub.load_roles = [r for r in c.JupyterHub.get("load_roles", []) if r.get("name") != name] + [role]
    access = f"access:services!service={service}"
    c.JupyterHub.extra_user_scopes = set(c.JupyterHub.get("extra_user_scopes", set())) | {access}


def _cost_service(c, config: CommunityConfig, config_path: Path) -> None:
    if config.pricing is None or not config.cost.enabled:
        return
    cost = config.cost
    port = cost.port or free_port()
    # the spawners' token for the spawn-time budget check; new at every hub start
    check_token = secrets.token_hex(32)
    _service(
        c,
        {
            "name": "cost",
            "display": True,
            "info": {"description": "What each person, group and profile cost"},
            "url": f"http://{cost.host}:{port}",
            "command": [sys.executable, "-m", "twoi2c_hub.services.cost", "--config", str(config_path)],
            # the sessions the usage service records
            "environment": {
                "TWOI2C_COST_DATABASE_URL": config.usage.database_url,
                "TWOI2C_COST_CHECK_TOKEN": check_token,
            },
            "oauth_no_confirm": True,
            "oauth_client_allowed_scopes": [READ_ALL_COST],
        },
        {
            "name": "cost-service",
            "description": "Stop the servers of people past a budget's stop threshold",
            "scopes": ["list:users", "read:users", "read:servers", "delete:servers"],
            "services": ["cost"],
        },
    )
    spawner = c.ProfileKubeSpawner if config.spawner.kind == "kube" else c.ProfileLocalSpawner
    spawner.pricing = config.pricing.to_pricing()
    spawner.instance_types = config.instance_catalog()
    if config.budgets is not None and config.budgets.budgets:
        # the spawn-time check in a process of its own, at the hub's priority (see
        # services.cost.app.BudgetCheckService); only the spawners call it
        checks_port = free_port() if not cost.port else cost.port + 1
        _service(
            c,
            {
                "name": "cost-checks",
                "display": False,
                "url": f"http://{cost.host}:{checks_port}",
                "command": [
                    sys.executable,
                    "-m",
                    "twoi2c_hub.services.cost",
                    "--config",
                    str(config_path),
                    "--checks-only",
                ],  # fmt: skip
                "environment": {
                    "TWOI2C_COST_DATABASE_URL": config.usage.database_url,
                    "TWOI2C_COST_CHECK_TOKEN": check_token,
                },
            },
            None,
        )
        path = "{base_url}services/cost-checks/api/v1/budgets/check"  # filled in at each check
        spawner.budget_check_url = f"http://{cost.host}:{checks_port}{path}"
        spawner.budget_check_token = check_token
        spawner.budget_when_unreadable = config.budgets.when_unreadable
    _readers(
        c,
        "cost-readers",
        READ_ALL_COST,
        "everyone's costs",
        "cost",
        list(config.community_admin_groups),
    )
