"""Who may do what: the community's roles and custom scopes (`roles:`, `custom_scopes:`),
and the roles that let community admins read everyone's figures in our services."""

from __future__ import annotations

from traitlets.config import Config

from ..config import CommunityConfig
from ..config.roles import lead_role_name


def readers(c: Config, name: str, scope: str, what: str, service: str, groups: list[str]) -> None:
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


def group_leads(c: Config, config: CommunityConfig, scope: str, service: str) -> None:
    """A role per group of `group_leads:`: `scope` (defined by the service's wiring, which
    asks for it) filtered to that group (`!group=NAME`) and access to `service`, held by
    its leads (usernames, and `group:NAME`'s members). Called for each service (usage,
    cost): a group's one role gathers the scopes of all."""
    roles = {r.get("name"): r for r in c.JupyterHub.get("load_roles", [])}
    for group, leads in config.group_leads.items():
        name = lead_role_name(group)
        granted = [f"{scope}!group={group}", f"access:services!service={service}"]
        before = roles.get(name, {}).get("scopes", [])
        roles[name] = {
            "name": name,
            "description": f"The leads of {group}: its usage, cost, budgets and statements",
            "scopes": [*before, *(s for s in granted if s not in before)],
            "users": [lead for lead in leads if not lead.startswith("group:")],
            "groups": [lead.removeprefix("group:") for lead in leads if lead.startswith("group:")],
        }
    c.JupyterHub.load_roles = list(roles.values())


def roles(c: Config, config: CommunityConfig) -> None:
    """The community's roles and custom scopes, after the hub's own (which keep theirs).

    A `user` role with scopes replaces JupyterHub's default one, and JupyterHub then
    ignores `extra_user_scopes` (every user's access to our services): those are added to
    it instead."""
    if config.custom_scopes:
        defined = {name: spec.model_dump(exclude_defaults=True) for name, spec in config.custom_scopes.items()}
        c.JupyterHub.custom_scopes = {**c.JupyterHub.get("custom_scopes", {}), **defined}
    if not config.roles:
        return
    extra = set(c.JupyterHub.get("extra_user_scopes", set()))
    loaded = []
    for spec in config.roles:
        role = spec.model_dump(exclude_unset=True)
        role["name"] = spec.name
        if spec.name == "user" and "scopes" in role and extra:
            role["scopes"] = [*role["scopes"], *sorted(extra - set(role["scopes"]))]
            c.JupyterHub.extra_user_scopes = set()
        loaded.append(role)
    c.JupyterHub.load_roles = [*c.JupyterHub.get("load_roles", []), *loaded]
