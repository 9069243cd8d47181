"""One menu for every page of the hub and its services: the same items, names and order
everywhere, the items a person sees depending on who they are.

The hub's pages (share/templates/page.html, through a template variable) and the
services' pages (services/framework/pages.py) both ask `menu()`; the `menu.html` macro
draws it, and the 404 pages list it as the way back. A student sees Home, Your usage and
Your costs; a community admin also the community's usage and costs, the statements and
what runs now; a group lead (`group_leads:`) the statements of their groups; a hub admin
also the hub's Admin page and API tokens; an operator of a fleet the fleet's pages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MenuItem:
    label: str
    path: str  # below the hub's base URL, e.g. "services/usage/"


@dataclass(frozen=True)
class Site:
    """What a hub offers, from its community config: which services' pages exist and who
    reads everyone's figures."""

    usage: bool = False
    cost: bool = False
    community_admin_groups: frozenset[str] = frozenset()
    # the fleet's pages on this hub (`fleet_view:`), for these groups and hub admins
    fleet_operator_groups: frozenset[str] | None = None
    # `group_leads:`, who leads a group: usernames and `group:NAME` entries
    group_leads: frozenset[str] = frozenset()

    def leads_a_group(self, name: str, groups: set[str]) -> bool:
        return name in self.group_leads or any(f"group:{g}" in self.group_leads for g in groups)

    @classmethod
    def of(cls, config: Any) -> Site:
        """From a loaded CommunityConfig (read, not imported: this module imports nothing)."""
        fleet = getattr(config, "fleet_view", None)
        return cls(
            usage=bool(config.usage.enabled),
            cost=config.pricing is not None and bool(config.cost.enabled),
            community_admin_groups=frozenset(config.community_admin_groups),
            fleet_operator_groups=frozenset(fleet.operator_groups) if fleet is not None else None,
            group_leads=frozenset(e for leads in (getattr(config, "group_leads", None) or {}).values() for e in leads),
        )


def menu(site: Site, *, admin: bool, groups: Iterable[str], name: str = "") -> list[MenuItem]:
    """The menu of a person (`name`): a hub admin (`admin`) or a member of `groups`."""
    groups = set(groups)
    community_admin = admin or bool(groups & site.community_admin_groups)
    items = [MenuItem("Home", "hub/home")]
    if site.usage:
        items.append(MenuItem("Your usage", "services/usage/"))
    if site.cost:
        items.append(MenuItem("Your costs", "services/cost/"))
    if community_admin and site.usage:
        items.append(MenuItem("Community usage", "services/usage/admin"))
    if community_admin and site.cost:
        items += [
            MenuItem("Community costs", "services/cost/admin"),
            MenuItem("Statements", "services/cost/statements/"),
            MenuItem("Running now", "services/cost/admin/running"),
        ]
    elif site.cost and site.leads_a_group(name, groups):
        items.append(MenuItem("Statements", "services/cost/statements/"))  # their groups'
    if site.fleet_operator_groups is not None and (admin or groups & site.fleet_operator_groups):
        items += [MenuItem("Fleet", "services/fleet/"), MenuItem("Fleet statements", "services/fleet/statements")]
    if admin:
        items += [MenuItem("Admin", "hub/admin"), MenuItem("API tokens", "hub/token")]
    return items


def menu_of_user(site: Site, user: Any) -> list[MenuItem]:
    """The menu of the hub's logged-in user (its User, or a hub API user model); none
    without one."""
    if user is None:
        return []
    if isinstance(user, dict):
        return menu(site, admin=bool(user.get("admin")), groups=user.get("groups") or [], name=user.get("name", ""))
    return menu(site, admin=bool(user.admin), groups=[g.name for g in user.groups], name=user.name)


def current(items: list[MenuItem], prefix: str, path: str | None) -> MenuItem | None:
    """The item of the page at `path` (the request's path): the one whose address is the
    longest beginning of it (a month's statement is under Statements)."""
    if not path:
        return None
    found = None
    for item in items:
        address = prefix + item.path
        if path == address or path.startswith(address.rstrip("/") + "/"):
            if found is None or len(item.path) > len(found.path):
                found = item
    return found
