"""One menu on every page of the hub and its services, and a home page that helps (issue 25,
items 3 and 9), on a real hub in Chromium.

A student (bob), a community admin who is not a hub admin (carol) and a hub admin (admin)
see the same items, names and order on the hub's pages, the usage and cost pages and every
404; the 404s list the way back to each of them. The home page shows the last server and
its choices, its cost so far and the budget left, each recomputed here from the demo's
prices, and "Start again" starts the same choices; the progress page's place in line is
captured in a screenshot."""

import sys
from datetime import datetime
from pathlib import Path

import pytest
import requests
import yaml
from axe_playwright_python.sync_playwright import Axe
from browsing import PHONE, log_in, screenshot
from bs4 import BeautifulSoup
from playwright.sync_api import expect

from twoi2c_hub import navigation
from twoi2c_hub.catalog import INSTANCE_TYPES, user_capacity
from twoi2c_hub.config import load_config
from twoi2c_hub.paths import demo_config

AXE = Axe()
BENCHMARKS = Path(__file__).parent.parent / "benchmarks"
BUDGET_USD = 5.0

STUDENT = ["Home", "Your usage", "Your costs"]
COMMUNITY_ADMIN = [*STUDENT, "Community usage", "Community costs", "Statements", "Running now"]
HUB_ADMIN = [*COMMUNITY_ADMIN, "Admin", "API tokens"]
# each person's pages (beside the menu's own) and the item each page is under
PAGES = {
    "hub/home": "Home",
    "hub/spawn": None,
    "services/usage/": "Your usage",
    "services/cost/": "Your costs",
}
ADMIN_PAGES = {
    "services/usage/admin": "Community usage",
    "services/cost/admin": "Community costs",
    "services/cost/statements/": "Statements",
    "services/cost/admin/running": "Running now",
}
MISSING = ["hub/no-such-page", "services/usage/no-such-page", "services/cost/no-such-page"]


@pytest.fixture(scope="module")
def hub(hub_factory, tmp_path_factory):
    folder = tmp_path_factory.mktemp("one-menu")
    config = demo_config()
    config["culling"] = {"enabled": False}
    config["usage"] = {"reconcile_interval": 1.0, "database_url": f"sqlite:///{folder / 'usage.sqlite'}"}
    config["auth"]["users"]["carol"] = {"groups": ["community-admins"]}
    config["auth"]["users"]["dana"] = {"groups": ["students"]}
    config["group_leads"] = {"students": ["dana"]}  # a group lead, not a community admin
    config["community_admin_groups"] = ["community-admins"]
    config["budgets"] = {
        "budgets": [
            {
                "name": "students-monthly",
                "applies_to": "group",
                "names": ["students"],
                "limit": BUDGET_USD,
                "period": "month",
                "thresholds": [{"at": 100, "action": "deny"}],
            }
        ]
    }
    # one start at a time, each taking a few seconds: the second person waits in line
    config["spawner"].update({"concurrent_starts": 1})
    config["spawner"]["local"] = {"apply_memory_limit": False, "apply_cpu_limit": False}
    (folder / "community.yaml").write_text(yaml.safe_dump(config))
    tiny = [sys.executable, str(BENCHMARKS / "tiny_server.py")]
    client = hub_factory(
        folder / "community.yaml",
        "one-menu",
        extra_config=f"""
c.ProfileLocalSpawner.cmd = {tiny!r}
c.Spawner.environment["TINY_SERVER_DELAY"] = "5"
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0.2}}
""",
    )
    client.config = load_config(folder / "community.yaml")
    client.wait_for(lambda: requests.get(f"{client.url}/services/cost/health", timeout=30).ok, what="the cost service")
    return client


def test_the_menu_of_each_person_and_the_page_it_marks():
    site = navigation.Site(usage=True, cost=True, community_admin_groups=frozenset({"staff"}))
    labels = lambda **person: [i.label for i in navigation.menu(site, **person)]  # noqa: E731
    assert labels(admin=False, groups=["students"]) == STUDENT
    assert labels(admin=False, groups=["students", "staff"]) == COMMUNITY_ADMIN
    assert labels(admin=True, groups=[]) == HUB_ADMIN
    # a hub without the cost service: none of its pages
    assert [i.label for i in navigation.menu(navigation.Site(usage=True), admin=True, groups=[])] == [
        "Home",
        "Your usage",
        "Community usage",
        "Admin",
        "API tokens",
    ]
    # a group lead (by name, or as a member of a group that leads): their groups' statements
    leads = navigation.Site(usage=True, cost=True, group_leads=frozenset({"dana", "group:tas"}))
    for person in ({"name": "dana", "groups": []}, {"name": "erin", "groups": ["tas"]}):
        assert [i.label for i in navigation.menu(leads, admin=False, **person)] == [*STUDENT, "Statements"]
    assert [i.label for i in navigation.menu(leads, admin=False, name="bob", groups=["x"])] == STUDENT
    # the fleet's pages for its operators (and hub admins) only
    fleet = navigation.Site(usage=True, fleet_operator_groups=frozenset({"ops"}))
    assert "Fleet" in [i.label for i in navigation.menu(fleet, admin=False, groups=["ops"])]
    assert "Fleet" not in [i.label for i in navigation.menu(fleet, admin=False, groups=["students"])]
    items = navigation.menu(site, admin=True, groups=[])
    here = {
        "/community/services/cost/admin/running": "Running now",
        "/community/services/cost/admin": "Community costs",
        "/community/services/cost/statements/2026-11": "Statements",
        "/community/services/cost/budgets": "Your costs",
        "/community/hub/home": "Home",
        "/community/hub/homework": None,
        "/elsewhere/services/usage/": None,
    }
    for path, label in here.items():
        found = navigation.current(items, "/community/", path)
        assert (found.label if found else None) == label, path


def menu_of(html: str) -> tuple[list[str], list[str]]:
    """The menu's items, and those marked as the current page."""
    soup = BeautifulSoup(html, "html.parser")
    links = soup.select("#thenavbar ul.me-auto a.nav-link")
    return [a.get_text(strip=True) for a in links], [a.get_text(strip=True) for a in links if a.get("aria-current")]


@pytest.mark.parametrize(
    ("username", "expected"),
    [("bob", STUDENT), ("dana", [*STUDENT, "Statements"]), ("carol", COMMUNITY_ADMIN), ("admin", HUB_ADMIN)],
)
def test_every_page_shows_the_same_menu_for_each_person(hub, username, expected):
    session = hub.login(username)
    pages = dict(PAGES)
    if username == "dana":
        pages["services/cost/statements/"] = "Statements"  # her group's
    elif username != "bob":
        pages.update(ADMIN_PAGES)
    if username == "admin":
        pages.update({"hub/admin": "Admin", "hub/token": "API tokens"})
    else:
        pages["hub/token"] = None  # still there for whoever looks for it, not in the menu
    for path, under in pages.items():
        response = session.get(f"{hub.url}/{path}", timeout=30)
        assert response.status_code == 200, path
        items, marked = menu_of(response.text)
        assert items == expected, path
        assert marked == ([under] if under else []), path
        login = BeautifulSoup(response.text, "html.parser").select_one("#login_widget")
        assert login.get_text(" ", strip=True) == f"{username} Log out", path
        assert "Services" not in items and "Token" not in items
    # every 404, the hub's and the services': the same menu, nothing marked, and the way
    # back to every page of it
    for path in MISSING:
        response = session.get(f"{hub.url}/{path}", timeout=30)
        assert response.status_code == 404, path
        assert menu_of(response.text) == (expected, []), path
        login = BeautifulSoup(response.text, "html.parser").select_one("#login_widget")
        assert login.get_text(" ", strip=True) == f"{username} Log out", path
        way_back = BeautifulSoup(response.text, "html.parser").select(".twoi2c-way-back a")
        assert [a.get_text(strip=True) for a in way_back] == expected, path
        hrefs = [a["href"] for a in way_back]
        assert hrefs[0] == "/hub/home" and "/services/cost/statements/" in hrefs or username == "bob", path


def audit(page, name):
    results = AXE.run(page)
    bad = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, "\n".join(f"{v['id']}: {v['help']} at {[n['target'] for n in v['nodes']][:5]}" for v in bad)
    screenshot(page, name)


@pytest.mark.parametrize(("username", "expected"), [("bob", STUDENT), ("carol", COMMUNITY_ADMIN)])
def test_the_menu_in_chromium_light_dark_and_phone(browser, hub, username, expected):
    for scheme in ("light", "dark"):
        for device in ("desktop", "phone"):
            viewport = PHONE if device == "phone" else {"width": 1280, "height": 900}
            context = browser.new_context(viewport=viewport, color_scheme=scheme)
            page = context.new_page()
            try:
                log_in(page, hub.url, username, hub.password)
                for path in ("hub/home", "services/usage/", "services/cost/", "services/cost/no-such-page"):
                    page.goto(f"{hub.url}/{path}")
                    menu = page.locator("#thenavbar ul.me-auto a.nav-link")
                    if device == "phone":
                        # collapsed behind the toggle; opened by keyboard
                        expect(menu.first).to_be_hidden()
                        page.locator(".navbar-toggler").focus()
                        page.keyboard.press("Enter")
                        expect(menu.first).to_be_visible()
                        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], path
                    expect(menu).to_have_text(expected)
                    name = path.strip("/").replace("/", "-").replace("services-", "")
                    audit(page, f"menu-{name}-{username}-{scheme}-{device}")
            finally:
                context.close()


def test_home_shows_the_last_server_its_cost_the_budget_and_starts_it_again(browser, hub):
    options = {"profile": "cpu", "resources": "mem_14_gib", "image": "scipy"}
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    log_in(page, hub.url, "bob", hub.password)  # before the server runs (then logging in opens it)
    try:
        token = hub.user_token("bob")
        response = hub.api("POST", "/users/bob/server", token=token, json={"user_options": options})
        assert response.status_code in (201, 202), response.text
        hub.wait_for(lambda: (hub.server("bob") or {}).get("ready"), timeout=90, what="bob's server")
        started = datetime.fromisoformat(hub.server("bob")["started"].replace("Z", "+00:00")).timestamp()

        def recorded():
            answer = requests.get(
                f"{hub.url}/services/usage/api/v1/sessions",
                params={"user": "bob"},
                headers={"Authorization": f"token {token}"},
                timeout=30,
            )
            return [s for s in answer.json()["data"] if not s["stopped"]] if answer.ok else None

        (session,) = hub.wait_for(recorded, what="bob's running session")
        # its price per hour worked out here: its share of the node's price, as the demo charges
        node = session["instance_type"]
        _, offered = user_capacity(INSTANCE_TYPES[node])
        hourly = session["mem_guarantee_bytes"] / offered * hub.config.pricing.prices[0].instances[node].on_demand
        before = datetime.now().timestamp()
        page.goto(f"{hub.url}/hub/home")
        after = datetime.now().timestamp()
        expect(page.locator(".twoi2c-home-server h2")).to_have_text("Your server is running")
        expect(page.locator(".twoi2c-last-profile")).to_have_text("Shared CPU server")
        choices = page.locator(".twoi2c-last-choices dd").all_inner_texts()
        assert "Jupyter SciPy" in choices and any("14" in c for c in choices), choices
        assert float(page.locator(".twoi2c-hourly").get_attribute("data-value")) == pytest.approx(hourly)
        so_far = float(page.locator(".twoi2c-cost-so-far").get_attribute("data-value"))
        assert hourly * (before - started) / 3600 - 1e-6 <= so_far <= hourly * (after - started) / 3600 + 1e-6
        # the budget: bob's only session is this one, counted up to now
        left = float(page.locator(".twoi2c-budget-left").inner_text().split()[0])
        assert (
            round(BUDGET_USD - hourly * (after - started + 5) / 3600, 2) - 0.01
            <= left
            <= round(BUDGET_USD - hourly * (before - started - 5) / 3600, 2) + 0.01
        )
        expect(page.locator(".twoi2c-home-links a")).to_have_text(STUDENT[1:])
        audit(page, "home-running-light-desktop")
        hub.stop_server("bob")

        # stopped: the last server and "Start again" with its choices
        page.goto(f"{hub.url}/hub/home")
        expect(page.locator(".twoi2c-home-server h2")).to_have_text("Your last server")
        change = page.locator(".twoi2c-start-again a")
        assert "resources=mem_14_gib" in change.get_attribute("href")
        audit(page, "home-last-server-light-desktop")
        for scheme, viewport, name in (("dark", PHONE, "dark-phone"), ("dark", None, "dark-desktop")):
            other = browser.new_context(viewport=viewport or {"width": 1280, "height": 900}, color_scheme=scheme)
            look = other.new_page()
            log_in(look, hub.url, "bob", hub.password)
            look.goto(f"{hub.url}/hub/home")
            audit(look, f"home-last-server-{name}")
            other.close()

        # carol starts first (one start at a time, each taking seconds): bob waits his turn
        carol = hub.api("POST", "/users/carol/server", token=hub.user_token("carol"), json={"user_options": {}})
        assert carol.status_code in (201, 202), carol.text
        page.locator(".twoi2c-start-again button[type=submit]").click()
        page.wait_for_url("**/spawn-pending/**")
        expect(page.locator("#progress-message")).to_contain_text("in line", timeout=15_000)
        audit(page, "spawn-progress-in-line-light-desktop")
        hub.wait_for(lambda: (hub.server("bob") or {}).get("ready"), timeout=90, what="bob's server again")
        assert hub.user_model("bob")["servers"][""]["user_options"] == options
    finally:
        context.close()
        for name in ("bob", "carol"):
            if hub.server(name):
                hub.stop_server(name)


def test_home_says_not_available_when_a_part_cannot_be_read():
    """The cost service unreachable, a catalog that fails: each part says so, the page is drawn."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor
    from types import SimpleNamespace

    from twoi2c_hub.hub.home import HomeFigures

    async def broken_catalog():
        raise RuntimeError("the profile list's callable failed")

    spawner = SimpleNamespace(
        user_options={"profile": "cpu"},
        get_catalog=broken_catalog,
        get_groups=lambda: ["students"],
        active=False,
        budget_check_url="http://127.0.0.1:9/services/cost-checks/api/v1/budgets/check",
        budget_check_token="x",
        budget_check_timeout=2,
        user=SimpleNamespace(name="bob"),
    )
    # in a thread of its own: Chromium's driver (other tests here) keeps a loop in this one
    with ThreadPoolExecutor(1) as thread:
        figures = thread.submit(asyncio.run, HomeFigures(SimpleNamespace(name="bob", spawner=spawner)).read()).result()
    assert figures == {"last": {"unavailable": True}, "running": None, "servers": [], "budget": {"unavailable": True}}
