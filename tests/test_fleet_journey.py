"""The fleet in Chromium: an operator's hub collects from two real hubs on loopback (one of
them itself) through their usage and cost APIs, and its fleet page shows the two headline
numbers, audited with axe-core and saved as screenshots, light and dark, desktop and phone."""

import re
import secrets
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
import yaml
from axe_playwright_python.sync_playwright import Axe
from browsing import PHONE, log_in, screenshot
from playwright.sync_api import expect

from twoi2c_hub.accounting.db import make_engine, session_maker, upgrade
from twoi2c_hub.accounting.events import ServerStart, ServerStarted, ServerStopped
from twoi2c_hub.accounting.models import DAY_MS, HOUR_MS
from twoi2c_hub.accounting.recording import record
from twoi2c_hub.network import free_port
from twoi2c_hub.paths import demo_config

AXE = Axe()
SECRET_ENV = "TWOI2C_TEST_FLEET_SECRET"
READER = """
c.JupyterHub.services.append({{"name": "fleet-reader", "api_token": {token!r}}})
c.JupyterHub.load_roles.append({{"name": "fleet-reader", "services": ["fleet-reader"], "scopes": [
    "custom:usage:digests", "custom:cost:statements",
    "access:services!service=usage", "access:services!service=cost"]}})
"""


def community(tmp_path, name: str, sessions: list[tuple[str, int]], **extra) -> str:
    """A hub's config and usage database, with `sessions` (who, days ago) of two hours each."""
    folder = tmp_path / name
    folder.mkdir()
    url = f"sqlite:///{folder / 'usage.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    today_ms = int(time.time() * 1000) // DAY_MS * DAY_MS
    with session_maker(engine)() as db:
        for who, days_ago in sessions:
            started = today_ms - days_ago * DAY_MS + 9 * HOUR_MS
            start = ServerStart(who, "", started, profile="cpu", cpu_guarantee=1.0, mem_guarantee_bytes=2**31)
            record(db, [ServerStarted(start), ServerStopped(who, "", started + 2 * HOUR_MS, "user", started)])
        db.commit()
    engine.dispose()
    config = demo_config()
    config["hub"]["name"] = f"{name.title()} Hub"
    config["culling"] = {"enabled": False}
    config["usage"] = {"database_url": url, "fleet_secret_env": SECRET_ENV, "reconcile_interval": 3600}
    config.update(extra)
    (folder / "community.yaml").write_text(yaml.safe_dump(config))
    return str(folder / "community.yaml")


@pytest.fixture(scope="module")
def fleet_hubs(hub_factory, tmp_path_factory):
    """Rocks' hub, then the operator's (Ocean's own hub, in the fleet too), collecting both."""
    tmp_path = tmp_path_factory.mktemp("fleet-journey")
    secret = secrets.token_hex(32)
    tokens = {"ocean": secrets.token_hex(32), "rocks": secrets.token_hex(32)}
    rocks = hub_factory(
        community(tmp_path, "rocks", [("carol", 1), ("alice", 2), ("erin", 20)]),
        "fleet-rocks",
        extra_config=READER.format(token=tokens["rocks"]),
        environment={SECRET_ENV: secret},
    )
    port = free_port()
    (tmp_path / "fleet.yaml").write_text(
        yaml.safe_dump(
            {
                "fleet": {
                    "name": "Loopback Operator",
                    "secret_env": SECRET_ENV,
                    "database_url": f"sqlite:///{tmp_path / 'fleet.sqlite'}",
                    "history_days": 40,
                },
                "clusters": [{"name": "loopback", "monthly_cost": 50}],
                "communities": [{"name": "ocean", "fee": 20}, {"name": "rocks", "fee": 5}],
                "hubs": [
                    {"name": "ocean-hub", "community": "ocean", "cluster": "loopback",
                     "url": f"http://127.0.0.1:{port}", "token_env": "TWOI2C_TEST_OCEAN_TOKEN"},
                    {"name": "rocks-hub", "community": "rocks", "cluster": "loopback",
                     "url": rocks.url, "token_env": "TWOI2C_TEST_ROCKS_TOKEN"},
                ],
            }
        )
    )  # fmt: skip
    fleet_view = {"config": "../fleet.yaml", "operator_groups": ["researchers"], "collect_interval": 3}
    ocean = hub_factory(
        community(tmp_path, "ocean", [("alice", 1), ("bob", 1), ("dave", 3)], fleet_view=fleet_view),
        "fleet-ocean",
        extra_config=READER.format(token=tokens["ocean"]),
        environment={
            SECRET_ENV: secret,
            "TWOI2C_TEST_OCEAN_TOKEN": tokens["ocean"],
            "TWOI2C_TEST_ROCKS_TOKEN": tokens["rocks"],
        },
        port=port,
    )
    admin = ocean.user_token("admin")

    def both_collected():
        answer = requests.get(
            f"{ocean.url}/services/fleet/api/v1/hubs", headers={"Authorization": f"token {admin}"}, timeout=30
        )
        return answer.ok and all(hub["collected"] and not hub["error"] for hub in answer.json()["data"])

    ocean.wait_for(both_collected, timeout=90, what="the fleet service to collect both hubs")
    return ocean, rocks


def test_the_operator_sees_people_once_across_real_hubs_and_the_cost_recovered(browser, fleet_hubs):
    ocean, _ = fleet_hubs
    admin = {"Authorization": f"token {ocean.user_token('admin')}"}
    api = f"{ocean.url}/services/fleet/api/v1"
    # alice used both hubs: once in the fleet's 7 days (alice, bob, carol, dave), and in each hub's
    day = datetime.fromtimestamp(time.time() - 86400, UTC).date()
    window = {"window": f"{day}T00:00:00Z,{day}T23:59:59Z"}
    weekly = requests.get(f"{api}/active-users", params={**window, "aggregate": "hub"}, headers=admin, timeout=30)
    assert {row["name"]: row["weekly"] for row in weekly.json()["data"]} == {"ocean-hub": 3, "rocks-hub": 2}
    fleet = requests.get(f"{api}/active-users", params=window, headers=admin, timeout=30).json()["data"]
    assert [row["weekly"] for row in fleet] == [4]
    metrics = requests.get(f"{ocean.url}/services/fleet/metrics", headers=admin, timeout=30).text
    assert 'twoi2c_fleet_hub_stale{hub="rocks-hub"} 0.0' in metrics  # both answered
    assert 'twoi2c_fleet_hub_collections_total{result="ok"}' in metrics

    for scheme, viewport in (("light", {"width": 1280, "height": 900}), ("dark", PHONE)):
        context = browser.new_context(viewport=viewport, color_scheme=scheme)
        page = context.new_page()
        try:
            log_in(page, ocean.url, "alice", ocean.password)  # a researcher: the operator group
            page.goto(f"{ocean.url}/services/fleet/")
            expect(page.locator("#weekly-active-users")).to_have_text("4")
            expect(page.locator("#hubs")).to_contain_text("rocks-hub")
            expect(page.locator("#cost-recovery")).to_be_visible()
            results = AXE.run(page)
            bad = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
            assert not bad, [(v["id"], [n["target"] for n in v["nodes"]][:3]) for v in bad]
            screenshot(page, f"fleet-overview-{scheme}-{'phone' if viewport is PHONE else 'desktop'}")
            if viewport is PHONE:
                assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        finally:
            context.close()


def test_a_community_drills_down_from_the_overview(page, fleet_hubs):
    ocean, _ = fleet_hubs
    log_in(page, ocean.url, "alice", ocean.password)
    page.goto(f"{ocean.url}/services/fleet/")
    page.get_by_role("link", name="rocks", exact=True).click()
    expect(page.locator("#community-name")).to_have_text("rocks")
    expect(page.locator("#community-hubs")).to_contain_text("rocks-hub (loopback)")
    expect(page.locator("#weeks tbody tr").first).to_contain_text("2")  # carol and alice
    results = AXE.run(page)
    assert not [v["id"] for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    screenshot(page, "fleet-community-light-desktop")
    # and on to one of its hubs
    page.locator("#community-hubs").get_by_role("link", name="rocks-hub").click()
    expect(page.locator("#hub-name")).to_have_text("rocks-hub")
    expect(page.locator("#hub-collected")).not_to_contain_text("never collected")
    expect(page.locator("#weeks tbody tr").first).to_contain_text("2")
    results = AXE.run(page)
    assert not [v["id"] for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    screenshot(page, "fleet-hub-light-desktop")


def test_the_statements_of_every_community_print_one_to_a_page(page, fleet_hubs, tmp_path):
    ocean, _ = fleet_hubs
    month = f"{datetime.now(UTC).date().replace(day=1) - timedelta(days=1):%Y-%m}"
    log_in(page, ocean.url, "alice", ocean.password)
    page.goto(f"{ocean.url}/services/fleet/statements?month={month}")
    expect(page.locator(".twoi2c-statement")).to_have_count(2)
    expect(page.locator(".twoi2c-statement").nth(1)).to_contain_text("rocks-hub")
    results = AXE.run(page)
    assert not [v["id"] for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    screenshot(page, "fleet-statements-light-desktop")
    page.emulate_media(media="print")
    expect(page.locator("nav.navbar")).to_be_hidden()
    pdf = page.pdf(format="A4")
    (tmp_path / f"statements-{month}.pdf").write_bytes(pdf)
    assert pdf.startswith(b"%PDF-") and len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf)) == 2  # one a page
