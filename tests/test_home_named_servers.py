"""The home page of a hub with named servers (`JupyterHub.allow_named_servers`): under
JupyterHub's own table of servers, each running server of the person with its profile,
since when it runs and what it has cost so far, and the budget left (issue 25, item 9).

On a real hub in Chromium: bob runs his default server and a named one with other
choices; each one's price per hour is worked out here from the demo's prices and the
recorded session, its cost so far from when the hub says it started, and the budget left
from both."""

import sys
from datetime import datetime
from pathlib import Path

import pytest
import requests
import yaml
from browsing import audit, log_in
from playwright.sync_api import expect

from twoi2c_hub.catalog import INSTANCE_TYPES, user_capacity
from twoi2c_hub.config import load_config
from twoi2c_hub.paths import demo_config

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"
BUDGET_USD = 5.0
# bob's two servers and their choices: the default one and a named one, with less memory
SERVERS = {
    "": {"profile": "cpu", "resources": "mem_14_gib", "image": "scipy"},
    "analysis": {"profile": "cpu", "resources": "mem_6_9_gib", "image": "scipy"},
}


@pytest.fixture(scope="module")
def hub(hub_factory, tmp_path_factory):
    folder = tmp_path_factory.mktemp("home-named")
    config = demo_config()
    config["culling"] = {"enabled": False}
    config["usage"] = {"reconcile_interval": 1.0, "database_url": f"sqlite:///{folder / 'usage.sqlite'}"}
    config["budgets"] = {
        "budgets": [{"name": "students-monthly", "display_name": "Students' monthly budget", "applies_to": "group",
                     "names": ["students"], "limit": BUDGET_USD, "period": "month",
                     "thresholds": [{"at": 100, "action": "deny"}]}],
    }  # fmt: skip
    config["spawner"]["local"] = {"apply_memory_limit": False, "apply_cpu_limit": False}
    (folder / "community.yaml").write_text(yaml.safe_dump(config))
    tiny = [sys.executable, str(BENCHMARKS / "tiny_server.py")]
    client = hub_factory(
        folder / "community.yaml",
        "home-named",
        extra_config=f"""
c.JupyterHub.allow_named_servers = True
c.ProfileLocalSpawner.cmd = {tiny!r}
""",
    )
    client.config = load_config(folder / "community.yaml")
    client.wait_for(lambda: requests.get(f"{client.url}/services/cost/health", timeout=30).ok, what="the cost service")
    return client


def server_url(name: str) -> str:
    return f"/users/bob/servers/{name}" if name else "/users/bob/server"


def test_home_shows_each_running_named_server_and_its_cost_so_far(browser, hub):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    log_in(page, hub.url, "bob", hub.password)  # before a server runs (then logging in opens it)
    token = hub.user_token("bob")
    try:
        for name, options in SERVERS.items():
            response = hub.api("POST", server_url(name), token=token, json={"user_options": options})
            assert response.status_code in (201, 202), response.text

        def servers():
            model = hub.user_model("bob")
            return model["servers"] if all(model["servers"].get(n, {}).get("ready") for n in SERVERS) else None

        running = hub.wait_for(servers, timeout=90, what="bob's two servers")
        started = {n: datetime.fromisoformat(running[n]["started"].replace("Z", "+00:00")).timestamp() for n in SERVERS}

        def recorded():
            answer = requests.get(
                f"{hub.url}/services/usage/api/v1/sessions",
                params={"user": "bob"},
                headers={"Authorization": f"token {token}"},
                timeout=30,
            )
            sessions = {s["server_name"]: s for s in answer.json()["data"] if not s["stopped"]} if answer.ok else {}
            return sessions if set(sessions) == set(SERVERS) else None

        sessions = hub.wait_for(recorded, what="bob's two running sessions")
        # each one's price per hour: its share of the node's price, as the demo charges
        hourly = {}
        for name, session in sessions.items():
            node = session["instance_type"]
            _, offered = user_capacity(INSTANCE_TYPES[node])
            price = hub.config.pricing.prices[0].instances[node].on_demand
            hourly[name] = session["mem_guarantee_bytes"] / offered * price
        assert hourly[""] > hourly["analysis"] > 0  # the choices differ, and so do the prices

        before = datetime.now().timestamp()
        page.goto(f"{hub.url}/hub/home")
        after = datetime.now().timestamp()
        items = page.locator(".twoi2c-running-servers li")
        expect(items).to_have_count(2)
        for name in SERVERS:
            item = page.locator(f".twoi2c-running-servers li[data-server='{name}']")
            expect(item).to_contain_text(name or "Your default server")
            expect(item).to_contain_text("(Shared CPU server)")
            assert float(item.locator(".twoi2c-hourly").get_attribute("data-value")) == pytest.approx(hourly[name])
            so_far = float(item.locator(".twoi2c-cost-so-far").get_attribute("data-value"))
            low, high = (hourly[name] * (t - started[name]) / 3600 for t in (before, after))
            assert low - 1e-6 <= so_far <= high + 1e-6, (name, so_far, low, high)
        # the budget left: both servers, counted up to now (a few seconds either way)
        left = float(page.locator(".twoi2c-budget-left").inner_text().split()[0])
        spent = lambda moment: sum(hourly[n] * (moment - started[n]) / 3600 for n in SERVERS)  # noqa: E731
        assert round(BUDGET_USD - spent(after + 5), 2) - 0.01 <= left <= round(BUDGET_USD - spent(before - 5), 2) + 0.01
        expect(page.locator(".twoi2c-home-budget")).to_contain_text("Students' monthly budget")
        audit(page, "home-named-servers-light-desktop")

        # the named one stopped: only the default one is left in the list
        response = hub.api("DELETE", server_url("analysis"), token=token)
        assert response.status_code in (202, 204), response.text
        hub.wait_for(lambda: "analysis" not in hub.user_model("bob")["servers"], timeout=60, what="analysis to stop")
        page.goto(f"{hub.url}/hub/home")
        expect(items).to_have_count(1)
        expect(items.first).to_have_attribute("data-server", "")
    finally:
        context.close()
        for name in SERVERS:
            if name in (hub.user_model("bob")["servers"] or {}):
                hub.api("DELETE", server_url(name), token=token)
