"""The spawn-time budget check and the spawn page's prices, for both spawners.

The cost service decides (it has the accounting data); the spawner asks it at every
start with the resolved server and refuses with the service's message, a 4xx. When the
service cannot answer, `budget_when_unreadable` applies: `allow` starts the server and
counts it on the hub's /metrics (`twoi2c_budget_unreadable_total`), `deny` refuses
with a message that says why. Prices per hour are computed here, from the same prices
the service uses (`catalog.Pricing`), without asking anyone.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from prometheus_client import Counter
from tornado.httpclient import HTTPClientError, HTTPRequest

from .. import catalog
from ..catalog.budget_answer import BudgetAnswer, RecentUse
from ..catalog.plain import by_choice
from ..catalog.pricing import amount
from ..usage_client import http_client, hub_url

log = logging.getLogger("twoi2c.budget")

UNREADABLE = Counter(
    "twoi2c_budget_unreadable",
    "Spawn-time budget checks that could not be made, by the mode that applied",
    ["mode"],
)


async def ask(
    url: str, token: str, timeout: float, username: str, groups: list[str], server: catalog.ServerSummary | None
) -> BudgetAnswer | None:
    """The cost service's answer for `username` starting `server` (None: just their
    budgets); None if the service cannot be asked or cannot answer."""
    request = HTTPRequest(
        hub_url(url),
        method="POST",
        body=json.dumps({"username": username, "groups": groups, "server": server and server.wire()}),
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
        request_timeout=timeout,
        connect_timeout=timeout,
    )
    try:
        response = await http_client("budget").fetch(request)
        return BudgetAnswer.model_validate(json.loads(response.body)["data"])
    except HTTPClientError as e:
        log.warning("Budget check for %s failed: %s %s", username, e.code, e.response.body[:200] if e.response else "")
    except Exception as e:
        log.warning("Budget check for %s failed: %s", username, e)
    return None


async def ask_for(spawner, server: catalog.ServerSummary | None = None) -> BudgetAnswer | None:
    """`ask` with what `spawner` knows: the service's address and token, the person and
    their groups (None also when the hub has no budget check)."""
    if not spawner.budget_check_url:
        return None
    return await ask(
        spawner.budget_check_url,
        spawner.budget_check_token,
        spawner.budget_check_timeout,
        spawner.user.name,
        spawner.get_groups(),
        server,
    )


async def recent_use(spawner, state: BudgetAnswer | None) -> dict[str, RecentUse]:
    """profile -> what the person's last measured sessions on it used, for the spawn page:
    from the budget check's answer `state` on a hub with budgets, else from the usage
    service; nothing if neither can say."""
    if spawner.budget_check_url:
        return (state.recent_use if state else None) or {}
    if not spawner.usage_recent_use_url:
        return {}
    request = HTTPRequest(
        hub_url(spawner.usage_recent_use_url),
        method="POST",
        body=json.dumps({"username": spawner.user.name}),
        headers={"Authorization": f"token {spawner.usage_events_token}", "Content-Type": "application/json"},
        request_timeout=spawner.usage_recent_use_timeout,
        connect_timeout=spawner.usage_recent_use_timeout,
    )
    try:
        response = await http_client("recent-use").fetch(request)
        answer = json.loads(response.body)["data"]
        return {profile: RecentUse.model_validate(figures) for profile, figures in answer.items()}
    except Exception as e:  # the page is drawn without it
        log.warning("Recent use of %s unreadable: %s", spawner.user.name, e)
        return {}


def choice_prices(
    profiles: list[dict], pricing: catalog.Pricing | None, instances: dict
) -> dict[str, dict[str, float | None]]:
    """profile slug -> {"": the profile alone, "option/choice": with that choice} -> price
    per hour today (None where no price covers it)."""
    if pricing is None:
        return {}
    today = datetime.now(UTC).date()

    def price(server: catalog.ServerResources) -> float | None:
        try:
            return pricing.hourly(server, today, instances).total
        except catalog.PricingError:
            return None

    return by_choice(profiles, price)


def form_notes(state: BudgetAnswer | None, prices: dict, currency: str) -> tuple[dict | None, dict, dict]:
    """What the spawn page says about the budget: a notice (text and level); while the
    budget restricts, the choices it disables, with the reason; and how many hours of each
    choice what is left buys (a budget in money)."""
    decisive = state.decisive_line() if state else None
    if decisive is None:
        return None, {}, {}
    level = {"none": "info", "warn": "warning", "restrict": "warning"}.get(state.action, "danger")
    text = decisive.text
    if state.stops_every_start:
        text = f"Your budget is used up, so no server can start. {text}."
        if state.stop_at:
            text += f" Running servers stop at {state.stop_at[:16].replace('T', ' ')} UTC."
    else:
        text = f"Budget: {text}. Left: {amount(decisive.left, decisive.unit, currency)}."
    if state.contact and state.action != "none":
        text += f" {state.contact}"
    disabled: dict[str, dict[str, str]] = {}
    hours: dict[str, dict[str, float]] = {}
    if decisive.unit == "money" and not state.stops_every_start:
        left = decisive.left
        for slug, by_choice in prices.items():
            for key, price in by_choice.items():
                if price is None or price <= 0:
                    continue
                if state.action == "restrict" and price > left:
                    disabled.setdefault(slug, {})[key] = (
                        f"{price:.2f} {currency} an hour: more than the {left:.2f} {currency} left of your budget"
                    )
                else:
                    hours.setdefault(slug, {})[key] = left / price
    notice = {"text": text, "level": level, "left": decisive.left, "unit": decisive.unit}
    return notice, disabled, hours
