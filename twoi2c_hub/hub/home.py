"""What the hub's home page shows a person (share/templates/home.html): their last server
and its choices in words, the form that starts the same choices again, what the running
server has cost so far, and what is left of their budget.

Nothing new is asked of anyone: the last choices are the hub's own (the server's saved
`user_options`), the price per hour is the spawn form's (the spawner's prices, the cost
service's too), and the budget is the cost service's answer to the spawn form's question
(`spawners.budget.ask`). A part that cannot be read says "not available now"; the page
itself never fails for it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from .. import catalog
from ..catalog.launch import FORM_PREFIX
from ..catalog.pricing import amount
from ..catalog.profiles import UNLISTED_SUFFIX
from ..spawners import budget

log = logging.getLogger("twoi2c.home")


class HomeFigures:
    """A template variable (`twoi2c_home`): made for each page's user, read only by the
    home page (`{% set home = twoi2c_home.read() %}`, awaited by the hub's async Jinja)."""

    def __init__(self, user: Any):
        self.user = user

    async def read(self) -> dict[str, Any]:
        spawner = getattr(self.user, "spawner", None) if self.user is not None else None
        figures: dict[str, Any] = {"last": None, "running": None, "servers": [], "budget": None}
        if spawner is None or not hasattr(spawner, "get_catalog"):
            return figures
        resolved = None
        try:
            figures["last"], resolved = await last_server(spawner)
        except Exception:
            log.exception("The home page of %s: the last server could not be read", self.user.name)
            figures["last"] = {"unavailable": True}
        if spawner.active and resolved is not None:
            figures["running"] = running_cost(spawner, resolved)
        if getattr(self.user, "allow_named_servers", False):
            figures["servers"] = await running_servers(self.user)
        if getattr(spawner, "budget_check_url", None):
            figures["budget"] = await budget_left(spawner)
        return figures


async def last_server(spawner) -> tuple[dict | None, catalog.ResolvedServer | None]:
    """The last server's profile and choices in words, the fields that start it again and
    the launch link that opens the form with them; `gone` if they are no longer offered."""
    options = dict(spawner.user_options or {})
    if not options.get("profile"):
        return None, None
    interface = options.pop("interface", None)
    pull = options.pop("git_pull", None)
    profiles = await spawner.get_catalog()
    try:
        resolved = catalog.resolve(profiles, spawner.get_groups(), options)
    except catalog.ProfileError:
        return {"gone": True, "profile": str(options["profile"])}, None
    slug = resolved.profile_slug
    profile = next((p for p in catalog.initialize(profiles) if p.get("slug") == slug), {})
    option_names = {k: o.get("display_name") or k for k, o in (profile.get("profile_options") or {}).items()}
    choices, fields = [], [("profile", slug)]
    for key, chosen in resolved.choices.items():
        choices.append({"option": option_names.get(key, key), "choice": chosen.get("display_name") or chosen["choice"]})
        if chosen.get("write_in"):
            fields.append((f"profile-option-{slug}--{key}{UNLISTED_SUFFIX}", chosen["write_in"]))
        elif chosen.get("choice"):
            fields.append((f"profile-option-{slug}--{key}", chosen["choice"]))
    if interface:
        fields.append(("interface", interface))
        choices.append({"option": "Opens in", "choice": str(interface)})
    if isinstance(pull, dict):
        fields += [(FORM_PREFIX + k, str(v)) for k, v in pull.items() if k in ("repo", "branch", "urlpath") and v]
    link = [("profile", slug)] + [(k, v) for k, v in fields[1:] if k.startswith("profile-option-")]
    return {
        "profile": resolved.profile_display_name or slug,
        "choices": choices,
        "fields": fields,
        "link_query": urlencode(link),
    }, resolved


def running_cost(spawner, resolved: catalog.ResolvedServer) -> dict | None:
    """Since when the server runs, its price per hour and what it has cost so far."""
    started = getattr(getattr(spawner, "orm_spawner", None), "started", None)
    if started is None:
        return None
    started = started.replace(tzinfo=UTC)
    now = datetime.now(UTC)
    running = {"since": started.isoformat().replace("+00:00", "Z"), "price": None}
    pricing = getattr(spawner, "pricing", None)
    if pricing is None:
        return running
    try:
        hourly = pricing.hourly(resolved.resources(), now.date(), spawner.instance_types).total
    except catalog.PricingError:
        return running
    hours = max(0.0, (now - started).total_seconds() / 3600)
    running.update(price=True, hourly=hourly, so_far=hourly * hours, currency=pricing.currency)
    return running


async def running_servers(user) -> list[dict[str, Any]]:
    """With named servers: each running server of the person (the default one first), its
    profile and what it has cost so far, each from its own choices."""
    servers = []
    for spawner in user.all_spawners():  # a server that is not running is a bare database row
        if not getattr(spawner, "active", False) or not hasattr(spawner, "get_catalog"):
            continue
        server: dict[str, Any] = {"name": spawner.name, "profile": None, "running": None}
        try:
            last, resolved = await last_server(spawner)
        except Exception:
            log.exception("The home page of %s: server %r could not be read", user.name, spawner.name)
            last, resolved = None, None
        if last and not last.get("gone"):
            server["profile"] = last["profile"]
        if resolved is not None:
            server["running"] = running_cost(spawner, resolved)
        servers.append(server)
    return servers


async def budget_left(spawner) -> dict:
    """The budget that decides for the person: what is left and the line in words."""
    answer = await budget.ask_for(spawner)
    if answer is None:
        return {"unavailable": True}
    line = answer.decisive_line()
    if line is None:
        return {"none": True}
    return {
        "left": amount(max(line.left, 0.0), line.unit, line.currency or ""),
        "text": line.text,
        "used_up": answer.stops_every_start,
    }
