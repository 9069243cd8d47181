"""`roles:` and `custom_scopes:`: JupyterHub's own roles (`c.JupyterHub.load_roles`),
checked with JupyterHub's scope definitions and filter grammar before the hub starts."""

from __future__ import annotations

import difflib
import hashlib
import re

from jupyterhub.roles import _role_name_pattern
from jupyterhub.scopes import ScopeNotFound, _check_scopes_exist, _custom_scope_pattern, scope_definitions
from pydantic import Field, field_validator, model_validator

from .base import Strict, _error

FILTERS = "!user=NAME, !group=NAME, !server=USER/SERVER or !service=NAME (or !user, !server, !service alone)"
# the roles configure() adds for the hub's own services, by name
OWN_ROLES = ("idle-culler", "usage-service", "usage-readers", "cost-service", "cost-readers")


class RoleSpec(Strict):
    """One of JupyterHub's roles: scopes, and who holds them. A list that is not given
    leaves the holders the hub already has; a list that is given is the whole list."""

    name: str
    """The role's name (lowercase letters, digits, `-._~`); `user` redefines JupyterHub's
    default role of every user."""
    description: str | None = None
    """What the role is for."""
    scopes: list[str] = Field(default_factory=list)
    """JupyterHub scopes, with filters such as `list:users!group=course-a`, or `custom:` scopes."""
    users: list[str] = Field(default_factory=list)
    """Hub usernames that hold the role."""
    groups: list[str] = Field(default_factory=list)
    """Groups whose members hold the role."""
    services: list[str] = Field(default_factory=list)
    """The hub's services that hold the role (`usage`, `cost`, `idle-culler`)."""

    @field_validator("name")
    @classmethod
    def _name(cls, name):
        if not _role_name_pattern.match(name):
            raise _error(
                f"'{name}' is not a role name JupyterHub accepts: 3-255 characters, lowercase "
                "letters, digits and '-._~', starting with a letter and ending with a letter or digit"
            )
        return name

    @model_validator(mode="after")
    def _admin_unchanged(self):
        if self.name == "admin" and ({"scopes", "description"} & self.model_fields_set):
            raise _error(
                "the built-in admin role's scopes and description cannot be changed (JupyterHub "
                "refuses it); name its holders only, or define a role of your own"
            )
        return self


class CustomScope(Strict):
    """A scope of the community's own (`custom:...`), as JupyterHub's `custom_scopes`."""

    description: str
    """Shown on the page where a person authorises an application."""
    subscopes: list[str] = Field(default_factory=list)
    """Other custom scopes this one implies."""


def scope_problem(scope: str, custom: set[str]) -> str | None:
    """What is wrong with `scope` for JupyterHub (None: nothing), `custom` being the
    custom scopes this hub defines."""
    name, _, filter_ = scope.partition("!")
    if name in custom or name.startswith("custom:"):
        if name not in custom:
            return f"'{name}' is not defined; define it in custom_scopes"
        if filter_ and not re.fullmatch(r"(user|service|server)|(user|group|service|server)=.+", filter_):
            return f"the filter '!{filter_}' is not one JupyterHub knows: {FILTERS}"
        return None
    try:
        _check_scopes_exist([scope])
    except ScopeNotFound:
        if name == "all":
            return "'all' is called 'inherit' in JupyterHub"
        if name not in scope_definitions:
            close = difflib.get_close_matches(name, [*scope_definitions, *custom], n=1)
            return f"'{name}' is not a JupyterHub scope" + (f" (did you mean '{close[0]}'?)" if close else "")
        return f"the filter '!{filter_}' is not one JupyterHub knows: {FILTERS}"
    if filter_.endswith("="):
        return f"the filter '!{filter_}' names nothing"
    return None


def custom_scope_problems(scopes: dict[str, CustomScope], own: set[str]) -> list[str]:
    problems = []
    for name, spec in scopes.items():
        if name in own:
            problems.append(f'custom_scopes["{name}"]: is the hub\'s own scope; choose another name')
        elif not _custom_scope_pattern.match(name):
            problems.append(
                f'custom_scopes["{name}"]: must start with custom: and contain only lowercase '
                "letters, digits, '-', '_', ':' and '*'"
            )
        for i, sub in enumerate(spec.subscopes):
            if sub not in scopes and sub not in own:
                problems.append(f"custom_scopes[\"{name}\"].subscopes[{i}]: '{sub}' is not a defined custom scope")
    return problems


def role_problems(roles: list[RoleSpec], custom: set[str], services: set[str]) -> list[str]:
    """Every problem of `roles` with its path: scopes, services and names."""
    problems = []
    seen: dict[str, int] = {}
    for i, role in enumerate(roles):
        if role.name in OWN_ROLES or role.name.startswith("group-leads-"):
            problems.append(
                f"roles[{i}].name: '{role.name}' is the hub's own role for its services; choose another name"
            )
        if role.name in seen:
            problems.append(f"roles[{i}].name: '{role.name}' is also the name of roles[{seen[role.name]}]")
        seen.setdefault(role.name, i)
        for j, scope in enumerate(role.scopes):
            problem = scope_problem(scope, custom)
            if problem:
                problems.append(f"roles[{i}].scopes[{j}]: {problem}")
        for j, service in enumerate(role.services):
            if service not in services:
                known = ", ".join(sorted(services)) or "none"
                problems.append(
                    f"roles[{i}].services[{j}]: '{service}' is not a service of this hub (its services: {known})"
                )
    return problems


def group_lead_problems(leads: dict[str, list[str]]) -> list[str]:
    """What is wrong with `group_leads:` (a group -> its leads: usernames, or `group:NAME`
    for every member of a group), each with its path."""
    problems = []
    for group, names in leads.items():
        where = f'group_leads["{group}"]'
        if not group.strip() or group != group.strip() or "!" in group or len(group) > 255:
            problems.append(f"{where}: not a group name: 1-255 characters, no '!', no spaces at either end")
        if not names:
            problems.append(f"{where}: names no lead; give usernames, or group:NAME for a group's members")
        seen: set[str] = set()
        for i, name in enumerate(names):
            kind, _, rest = name.partition(":")
            wrong = not name.strip() or name != name.strip() or (kind == "group" and not rest.strip())
            if wrong or (":" in name and kind != "group"):
                problems.append(
                    f"{where}[{i}]: '{name}' is neither a username nor group:NAME (a group whose members lead it)"
                )
            elif name in seen:
                problems.append(f"{where}[{i}]: '{name}' is named twice")
            seen.add(name)
    return problems


def lead_role_name(group: str) -> str:
    """The JupyterHub role of a group's leads: readable, and unique whatever the group's name."""
    slug = re.sub(r"[^a-z0-9]+", "-", group.lower()).strip("-")[:40] or "group"
    return f"group-leads-{slug}-{hashlib.sha256(group.encode()).hexdigest()[:8]}"
