"""The hub-managed services and the roles they need: jupyterhub-idle-culler, our usage
service (sessions in, usage out) and our cost service (prices, budgets; its spawn-time
check runs as a second process, `cost-checks`). Each gets a port, the tokens the spawners
use to reach it (new at every hub start) and the database's libpq settings."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from traitlets.config import Config

from ..config import CommunityConfig
from ..network import free_port
from ..usage_client import UsageEventPoster
from .environment import SettingError
from .roles import group_leads, readers

PG_ENVIRONMENT = ("PGPASSWORD", "PGSSLMODE", "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY")
IDLE_CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
# the custom scopes that read everyone's figures in a service (community admins hold them)
READ_ALL_USAGE = "custom:usage:read-all"
READ_ALL_COST = "custom:cost:read-all"
READ_GROUP_USAGE = "custom:usage:read-group"  # a group lead's, filtered to the group
READ_GROUP_COST = "custom:cost:read-group"  # a group lead's, filtered to the group
READ_FLEET = "custom:fleet:read"
# what a fleet's token needs of a hub, and nothing more: its people's digests, its statements
FLEET_DIGESTS = "custom:usage:digests"
FLEET_STATEMENTS = "custom:cost:statements"


def _scope(c: Config, scope: str, description: str) -> None:
    c.JupyterHub.custom_scopes = {**c.JupyterHub.get("custom_scopes", {}), scope: {"description": description}}


def culler(c: Config, config: CommunityConfig) -> None:
    """jupyterhub-idle-culler, from the config's `culling:`."""
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


def _service(c: Config, service: dict, role: dict | None) -> None:
    """Add (or replace) a hub-managed service, and the role with the scopes it needs."""
    name = service["name"]
    # the database's password and TLS settings reach the services as they reach the hub
    # (libpq's variables: a URL in the config file carries no password)
    if "environment" in service:
        service["environment"].update({k: os.environ[k] for k in PG_ENVIRONMENT if k in os.environ})
        # glibc gives each thread that allocates an arena of its own (up to 8 a core), each
        # keeping what was freed in it: the services' few database threads share two
        service["environment"].setdefault("MALLOC_ARENA_MAX", os.environ.get("MALLOC_ARENA_MAX", "2"))
    c.JupyterHub.services = [s for s in c.JupyterHub.get("services", []) if s.get("name") != name] + [service]
    if role:
        c.JupyterHub.load_roles = [r for r in c.JupyterHub.get("load_roles", []) if r.get("name") != role["name"]]
        c.JupyterHub.load_roles = c.JupyterHub.load_roles + [role]


def usage_service(c: Config, config: CommunityConfig, config_path: Path) -> None:
    """The usage service, from the config's `usage:`; the spawners post it their events."""
    usage = config.usage
    if not usage.enabled:
        return
    port = usage.port or free_port()
    # shared with the spawners for their start/stop events; new at every hub start
    events_token = secrets.token_hex(32)
    environment = {
        "TWOI2C_USAGE_EVENTS_TOKEN": events_token,
        "TWOI2C_USAGE_DATABASE_URL": usage.database_url,
        "TWOI2C_USAGE_RECONCILE_INTERVAL": str(usage.reconcile_interval),
        "TWOI2C_USAGE_MEASURE_INTERVAL": str(usage.measure_interval),
    }
    if usage.prometheus_url:
        environment["TWOI2C_USAGE_PROMETHEUS_URL"] = usage.prometheus_url
    # JupyterHub gives a service only its `environment`: the fleet secret passes through
    # (the service refuses to start without it, saying so)
    if usage.fleet_secret_env and usage.fleet_secret_env in os.environ:
        environment[usage.fleet_secret_env] = os.environ[usage.fleet_secret_env]
    _service(
        c,
        {
            "name": "usage",
            "display": True,
            "info": {"description": "Server usage for each person and for the community"},
            "url": f"http://{usage.host}:{port}",
            "command": [sys.executable, "-m", "twoi2c_hub.services.usage", "--config", str(config_path)],
            "environment": environment,
            "oauth_no_confirm": True,
            "oauth_client_allowed_scopes": [READ_ALL_USAGE, READ_GROUP_USAGE],
        },
        {
            "name": "usage-service",
            "description": "Read servers and groups to reconcile sessions, and where servers run to measure them",
            # admin:server_state: the spawner's state, where a local server's process id is
            "scopes": ["list:users", "read:users", "read:servers", "admin:server_state"],
            "services": ["usage"],
        },
    )
    _scope(c, FLEET_DIGESTS, "Read each day's people as the fleet's keyed digests, never a name (a fleet's token)")
    _scope(c, READ_GROUP_USAGE, "Read the sessions of the groups you lead in the usage service")
    group_leads(c, config, READ_GROUP_USAGE, "usage")
    readers(
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
    spawner.usage_recent_use_url = f"http://127.0.0.1:{port}{{base_url}}services/usage/api/v1/recent-use"
    if config.auth.provider in ("github", "cilogon", "oidc", "external"):
        # group changes at login and refresh, dated exactly (the service also reads groups
        # from the hub at every reconciliation)
        authenticator = c.JupyterHub.authenticator_class.__name__
        c[authenticator].group_change_hook = UsageEventPoster(events_url, events_token)


def cost_service(c: Config, config: CommunityConfig, config_path: Path) -> None:
    """The cost service (with `pricing:`), and its spawn-time budget check (with `budgets:`)."""
    if config.pricing is None or not config.cost.enabled:
        return
    cost = config.cost
    port = cost.port or free_port()
    # the spawners' token for the spawn-time budget check; new at every hub start
    check_token = secrets.token_hex(32)
    command = [sys.executable, "-m", "twoi2c_hub.services.cost", "--config", str(config_path)]
    _service(
        c,
        {
            "name": "cost",
            "display": True,
            "info": {"description": "What each person, group and profile cost"},
            "url": f"http://{cost.host}:{port}",
            "command": command,
            # the sessions the usage service records
            "environment": {
                "TWOI2C_COST_DATABASE_URL": config.usage.database_url,
                "TWOI2C_COST_CHECK_TOKEN": check_token,
            },
            "oauth_no_confirm": True,
            "oauth_client_allowed_scopes": [READ_ALL_COST, READ_GROUP_COST],
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
                "command": [*command, "--checks-only"],
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
    _scope(c, FLEET_STATEMENTS, "Read the monthly statements, no person's figures (a fleet's token)")
    readers(
        c,
        "cost-readers",
        READ_ALL_COST,
        "everyone's costs",
        "cost",
        list(config.community_admin_groups),
    )
    # defined whether or not there are group leads: the service's OAuth client asks for it
    _scope(c, READ_GROUP_COST, "Read the figures of the groups you lead in the cost service")
    group_leads(c, config, READ_GROUP_COST, "cost")


def fleet_service(c: Config, config: CommunityConfig, config_path: Path) -> None:
    """The fleet's pages and API (`fleet_view:`), for the operator groups only. The service
    gets the fleet secret and each hub's token from the hub's environment, by the names the
    fleet config gives (a missing one: that hub is not collected, and its page says why)."""
    view = config.fleet_view
    if view is None:
        return
    from ..config.fleet import load_fleet
    from ..config.loading import ConfigError

    fleet_path = (config_path.parent / view.config).resolve()
    try:
        fleet = load_fleet(fleet_path)
    except ConfigError as e:
        raise SettingError(f"fleet_view.config: {fleet_path}: " + "; ".join(e.errors)) from None
    names = [fleet.fleet.secret_env, *(hub.token_env for hub in fleet.hubs if hub.token_env)]
    port = view.port or free_port()
    _service(
        c,
        {
            "name": "fleet",
            "display": True,
            "info": {"description": "Every hub of the fleet: active users, cost and cost recovery"},
            "url": f"http://{view.host}:{port}",
            "command": [
                sys.executable,
                "-m",
                "twoi2c_hub.services.fleet",
                "--config",
                str(config_path),
                "--fleet-config",
                str(fleet_path),
                f"--FleetService.collect_interval={view.collect_interval}",
            ],
            "environment": {name: os.environ[name] for name in names if name in os.environ},
            "oauth_no_confirm": True,
            "oauth_client_allowed_scopes": [READ_FLEET],
        },
        None,
    )
    _scope(c, READ_FLEET, "Read the fleet's figures in the fleet service")
    role = {
        "name": "fleet-operators",
        "description": "The operator groups: the fleet's figures",
        "scopes": [READ_FLEET, "access:services!service=fleet"],
        "groups": list(view.operator_groups),
    }
    c.JupyterHub.load_roles = [r for r in c.JupyterHub.get("load_roles", []) if r["name"] != role["name"]] + [role]
