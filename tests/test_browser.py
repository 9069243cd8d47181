"""The spawn page in a real browser (Debian's Chromium driven by Playwright)."""

import json
import re
from datetime import UTC, date, datetime, timedelta

import pytest
import requests
import yaml
from browsing import log_in, screenshot
from playwright.sync_api import expect

pytestmark = pytest.mark.hub


def test_bob_picks_his_own_image_and_the_browser_checks_it_first(page, demo_hub):
    log_in(page, demo_hub.url, "bob", demo_hub.password)
    page.goto(f"{demo_hub.url}/hub/spawn")
    expect(page.locator(".twoi2c-profile")).to_have_count(1)
    expect(page.get_by_text("Shared CPU server")).to_be_visible()
    expect(page.get_by_text("GPU server")).to_have_count(0)

    # the form starts from bob's last choice (another test's): choose from a listed image
    page.check("input[name='profile-option-cpu--resources'][value=mem_6_9_gib]")
    page.select_option("#profile-option-cpu--image", "scipy")
    write_in = page.locator("#profile-option-cpu--image--unlisted-choice")
    expect(write_in).to_be_hidden()
    page.select_option("#profile-option-cpu--image", "unlisted-choice")
    expect(write_in).to_be_visible()

    # the operator's regex is checked in the browser too, before anything is sent
    write_in.fill("Not An Image")
    assert write_in.evaluate("input => input.checkValidity()") is False
    write_in.fill("quay.io/jupyter/base-notebook:2025-01-06")
    assert write_in.evaluate("input => input.checkValidity()") is True

    shown = page.locator("input[name=interface]:checked").get_attribute("value")
    try:
        page.click("form#spawn_form input[type=submit], form#spawn_form button[type=submit]")
        page.wait_for_url(f"{demo_hub.url}/user/bob/**", timeout=60_000)
        assert demo_hub.server("bob")["user_options"] == {
            "profile": "cpu",
            "resources": "mem_6_9_gib",
            "image--unlisted-choice": "quay.io/jupyter/base-notebook:2025-01-06",
            "interface": shown,  # the interface the form showed chosen
        }
    finally:
        if demo_hub.server("bob"):
            demo_hub.stop_server("bob")


def test_refusal_is_shown_on_the_spawn_page(page, demo_hub):
    log_in(page, demo_hub.url, "bob", demo_hub.password)
    page.goto(f"{demo_hub.url}/hub/spawn")
    # a forged choice, as a person editing the page would send it
    page.evaluate("""() => {
        const radio = document.querySelector('input[name="profile-option-cpu--resources"]');
        radio.value = 'whole-node';
        radio.checked = true;
    }""")
    page.click("form#spawn_form input[type=submit], form#spawn_form button[type=submit]")
    expect(page.get_by_text("is only for members of researchers")).to_be_visible()
    assert demo_hub.server("bob") is None


HOSTILE = "<img src=x onerror=alert(1)>\"'&"


@pytest.fixture(scope="module")
def hostile_hub(hub_factory, tmp_path_factory):
    """A hub whose config is full of markup, as a careless or hostile operator might write."""
    config = tmp_path_factory.mktemp("hostile-config") / "community.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "hub": {
                    "name": HOSTILE,
                    "announcement": HOSTILE,
                    "funders": [{"name": HOSTILE, "url": 'https://example.org/"><script>alert(1)</script>'}],
                    "access": HOSTILE,
                    "operated_by": {"name": HOSTILE, "logo_url": '/x"onerror="alert(1)'},
                },
                "auth": {"users": {"eve": {"groups": [HOSTILE]}}},
                "profiles": [
                    {
                        "display_name": HOSTILE,
                        "description": HOSTILE,
                        "allowed_groups": [HOSTILE],
                        "profile_options": {
                            "image": {
                                "display_name": HOSTILE,
                                "choices": {"a": {"display_name": HOSTILE, "description": HOSTILE}},
                                "unlisted_choice": {
                                    "enabled": True,
                                    "display_name": HOSTILE,
                                    "validation_message": HOSTILE,
                                },
                            }
                        },
                    }
                ],
                "culling": {"enabled": False},
            }
        )
    )
    return hub_factory(config, "hostile-hub")


def test_markup_in_the_config_is_shown_as_text_and_never_runs(page, hostile_hub):
    log_in(page, hostile_hub.url, "eve", hostile_hub.password)
    page.goto(f"{hostile_hub.url}/hub/spawn")
    expect(page.locator(".twoi2c-community-name")).to_have_text(HOSTILE)
    expect(page.locator(".twoi2c-profile label.fw-bold")).to_have_text(HOSTILE)
    assert page.locator("img[src=x]").count() == 0
    assert page.title() == HOSTILE
    # every image has loaded or failed: any onerror handler has run by now
    page.wait_for_load_state("load")
    page.wait_for_function("Array.from(document.images).every(image => image.complete)")
    assert page.dialogs == []


def run_a_server(hub, username):
    """Start and stop a server of `username`; return once the usage service has recorded it."""
    token = hub.user_token(username)
    response = hub.api("POST", f"/users/{username}/server", token=token, json={"user_options": {"profile": "cpu"}})
    assert response.status_code in (201, 202)
    hub.wait_for(lambda: (hub.server(username) or {}).get("ready"), what=f"{username}'s server")
    hub.stop_server(username)

    def recorded():
        answer = requests.get(f"{hub.url}/services/usage/api/v1/sessions", params={"state": "stopped"},
                              headers={"Authorization": f"token {token}"}, timeout=30)  # fmt: skip
        return answer.status_code == 200 and answer.json()["data"]

    hub.wait_for(recorded, what=f"{username}'s session in the usage service")


def test_usage_pages_draw_their_charts_and_sort_their_tables(page, demo_hub):
    run_a_server(demo_hub, "bob")
    log_in(page, demo_hub.url, "admin", demo_hub.password)
    page.goto(f"{demo_hub.url}/services/usage/admin?aggregate=user")
    expect(page.locator("#usage-chart .main-svg").first).to_be_visible(timeout=15_000)
    expect(page.locator("#active-chart .main-svg").first).to_be_visible()
    rows = page.locator("#usage-totals tbody tr")
    assert any(text.startswith("bob") for text in rows.all_inner_texts())
    # each person keeps their colour from chart to chart: the cost page's bars by person
    # are coloured as the usage page's, whatever their order in the legend
    colours = "element => Object.fromEntries(element.data.map(t => [t.name, t.marker.color]))"
    usage_colours = page.locator("#usage-chart").evaluate(colours)
    page.goto(f"{demo_hub.url}/services/cost/admin?aggregate=user")
    expect(page.locator("#cost-chart .main-svg").first).to_be_visible(timeout=15_000)
    cost_colours = page.locator("#cost-chart").evaluate(colours)
    shared = set(usage_colours) & set(cost_colours) - {"(others)"}
    assert "bob" in shared and all(usage_colours[n] == cost_colours[n] for n in shared)
    # and on one chart no two people share a colour, whatever their names hash to
    assert len(set(cost_colours.values())) == len(cost_colours)
    # bob and dan pick the same colour by their names; twelve names fill the palette
    distinct = "names => new Set(Object.values(twoi2cColours(names))).size"
    assert page.evaluate(distinct, ["bob", "dan", "erin", "alice"]) == 4
    assert page.evaluate(distinct, [f"person{i}" for i in range(12)]) == 12
    page.goto(f"{demo_hub.url}/services/usage/admin?aggregate=user")
    expect(page.locator("#usage-chart .main-svg").first).to_be_visible(timeout=15_000)
    # the figure asked for is the first beside the names (what a phone shows first)
    headers = page.locator("#usage-totals thead th").all_inner_texts()
    assert headers[1].startswith("Server hours"), headers
    # sorting by sessions puts the largest first, then the smallest on a second click
    header = page.locator("#usage-totals th", has_text="sessions")
    column = 1 + next(i for i, text in enumerate(headers) if "sessions" in text.lower())
    cells = f"#usage-totals tbody tr td:nth-child({column})"
    header.click()
    values = [float(v) for v in page.locator(cells).evaluate_all("cells => cells.map(c => c.dataset.value)")]
    assert values == sorted(values, reverse=True)
    header.click()
    values = [float(v) for v in page.locator(cells).evaluate_all("cells => cells.map(c => c.dataset.value)")]
    assert values == sorted(values)
    # a month before the hub existed: the page says so instead of drawing empty axes
    page.goto(f"{demo_hub.url}/services/usage/?start=2020-01-01&end=2020-01-31")
    expect(page.locator(".twoi2c-chart-empty")).to_have_text("No usage in this period.")


def test_the_monthly_statement_prints_to_pdf_without_the_navigation(page, demo_hub, tmp_path):
    from datetime import UTC, datetime

    month = datetime.now(UTC).strftime("%Y-%m")
    log_in(page, demo_hub.url, "admin", demo_hub.password)
    page.goto(f"{demo_hub.url}/services/cost/statements/{month}")
    expect(page.locator("h1")).to_contain_text("Demo Community Hub: statement for ")
    expect(page.locator("h1 time")).to_have_attribute("datetime", month)  # in the reader's locale
    expect(page.locator("#statement-summary")).to_contain_text("Total")
    expect(page.locator("nav.navbar")).to_be_visible()
    page.emulate_media(media="print")
    expect(page.locator("nav.navbar")).to_be_hidden()  # the print stylesheet
    expect(page.locator(".twoi2c-no-print")).to_be_hidden()
    pdf = page.pdf(format="A4")
    (tmp_path / f"statement-{month}.pdf").write_bytes(pdf)
    assert pdf.startswith(b"%PDF-") and len(pdf) > 5000
    # only hub admins and the community admins read statements
    bob = demo_hub.login("bob")
    assert bob.get(f"{demo_hub.url}/services/cost/statements/{month}", timeout=30).status_code == 403


@pytest.fixture(scope="module")
def budget_hub(hub_factory, tmp_path_factory):
    """The demo with a students' budget of 10 USD a month (warn at 80 %), bob past 80 %."""
    from past_spending import spend

    from twoi2c_hub.paths import demo_config

    work = tmp_path_factory.mktemp("browser-budget")
    config = demo_config()
    config["culling"] = {"enabled": False}
    config["usage"] = {"reconcile_interval": 1.0, "database_url": f"sqlite:///{work / 'usage.sqlite'}"}
    config["budgets"] = {
        "contact": "Ask the course staff for more.",
        "budgets": [
            {"name": "students-weekly", "applies_to": "group", "names": ["students"], "limit": 10, "period": "7d"},
            {"name": "community", "applies_to": "hub", "limit": 200, "period": "month"},
        ],
    }
    path = work / "community.yaml"
    path.write_text(yaml.safe_dump(config))
    client = hub_factory(path, "browser-budget-hub")
    client.database_url = config["usage"]["database_url"]
    spend(client, "bob", 8.4)
    spend(client, "alice", 3.1, groups=("researchers",))
    return client


def test_the_spawn_page_shows_prices_and_the_budget_left(page, budget_hub):
    log_in(page, budget_hub.url, "bob", budget_hub.password)
    page.goto(f"{budget_hub.url}/hub/spawn")
    notice = page.locator(".twoi2c-budget")
    expect(notice).to_contain_text("students-weekly: 8.40 USD of 10.00 USD used (84 %) in the last 7 days")
    expect(notice).to_contain_text("Left: 1.60 USD. Ask the course staff for more.")
    first = page.locator("#profile-option-cpu--resources .twoi2c-choice").first
    expect(first.locator(".twoi2c-price")).to_contain_text("USD an hour")
    expect(first.locator(".twoi2c-hours-left")).to_contain_text("your budget left buys about")
    screenshot(page, "spawn-page-budget")


def test_the_community_cost_page_in_a_browser(page, budget_hub):
    log_in(page, budget_hub.url, "alice", budget_hub.password)  # researchers: the community admins
    page.goto(f"{budget_hub.url}/services/cost/admin?aggregate=user")
    expect(page.locator("h1")).to_have_text("Community costs")
    expect(page.locator("#cost-totals tbody tr").first.locator("td").first).to_have_text("bob")
    expect(page.locator(".twoi2c-budget-status[data-budget=community]")).to_contain_text("11.50 USD of 200.00 USD")
    page.wait_for_selector(".twoi2c-budget-chart .main-svg")  # the chart library drew the budget chart
    page.wait_for_selector("#cost-chart .main-svg")
    screenshot(page, "community-costs")


def test_a_day_of_usage_reads_at_a_glance_on_a_phone_in_light_and_dark(browser, demo_hub, tmp_path):
    run_a_server(demo_hub, "bob")
    context = browser.new_context(viewport={"width": 390, "height": 844}, timezone_id="Europe/Berlin")
    page = context.new_page()
    try:
        log_in(page, demo_hub.url, "bob", demo_hub.password)
        page.goto(f"{demo_hub.url}/services/usage/?metric=server_hours")
        expect(page.locator("#usage-chart .main-svg").first).to_be_visible(timeout=15_000)
        # one bar a day over the whole 30 days, zeros included, on a date axis (no clock times)
        chart = json.loads(page.locator("#usage-chart-data").text_content())
        days = [date.fromisoformat(x) for x in chart["x"]]
        assert len(days) == 30 and all(b - a == timedelta(days=1) for a, b in zip(days, days[1:], strict=False))
        assert days[-1] == datetime.now(UTC).date()
        assert sum(chart["series"][0]["y"]) > 0 and chart["series"][0]["y"].count(0) >= 29 - 1
        ticks = page.locator("#usage-chart .xtick text").evaluate_all("els => els.map(e => e.textContent)")
        assert ticks and not any(":" in t for t in ticks), ticks
        # times in the reader's zone, named; units explained; nothing wider than the phone
        expect(page.locator("#usage-sessions time").first).to_contain_text(re.compile(r"CET|GMT\+1"))
        expect(page.locator(".twoi2c-units")).to_contain_text("a memory GiB-hour is one GiB of memory")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        # the figure asked for is on screen beside the profile, and a table that scrolls says so
        page.goto(f"{demo_hub.url}/services/usage/?metric=gpu_hours")
        asked = page.locator("#usage-totals thead th", has_text="GPU hours")
        box = asked.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box
        expect(page.locator(".twoi2c-scroll-hint").first).to_be_visible()
        page.set_viewport_size({"width": 1280, "height": 800})
        expect(page.locator(".twoi2c-scroll-hint").first).to_be_hidden()
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(f"{demo_hub.url}/services/usage/?metric=server_hours")
        expect(page.locator("#usage-chart .main-svg").first).to_be_visible(timeout=15_000)
        # the table sorts from the keyboard, and says how it is sorted
        header = page.locator("#usage-totals th", has_text="CPU core-hours")
        header.locator("button").focus()
        page.keyboard.press("Enter")
        expect(header).to_have_attribute("aria-sort", "descending")
        page.keyboard.press("Enter")
        expect(header).to_have_attribute("aria-sort", "ascending")
        expect(page.locator("#usage-totals th", has_text="Server hours")).to_have_attribute("aria-sort", "none")
        # the chart follows the hub's dark mode: transparent background, light text
        page.evaluate("document.documentElement.setAttribute('data-bs-theme', 'dark')")
        tick = page.locator("#usage-chart .xtick text").first
        expect(tick).to_have_css("fill", re.compile(r"rgb\((2[0-5]\d|1[5-9]\d), "))
        background = page.locator("#usage-chart .main-svg").first.evaluate("e => e.style.background")
        assert background in ("rgba(0, 0, 0, 0)", "transparent"), background
        screenshot(page, "usage-phone-dark")
        # a period without usage says so instead of drawing empty axes
        page.goto(f"{demo_hub.url}/services/usage/?start=2020-01-01&end=2020-01-31")
        expect(page.locator(".twoi2c-chart-empty")).to_have_text("No usage in this period.")
        assert page.locator("#usage-chart").count() == 0
        # presets: last month is one click
        page.locator(".twoi2c-presets a", has_text="Last month").click()
        first_of_month = datetime.now(UTC).date().replace(day=1)
        expect(page.locator("#end")).to_have_value((first_of_month - timedelta(days=1)).isoformat())
    finally:
        page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
        context.close()


def test_the_spawn_form_works_without_javascript(browser, demo_hub, tmp_path):
    """The profile cards are a plain form: with scripts off, choosing and starting work."""
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        log_in(page, demo_hub.url, "bob", demo_hub.password)
        page.goto(f"{demo_hub.url}/hub/spawn")
        expect(page.locator("input[name=profile][value=cpu]")).to_be_checked()
        page.check("input[name='profile-option-cpu--resources'][value=mem_14_gib]")
        # chosen, not left as it is: the form starts from bob's last choice (another test's)
        page.select_option("#profile-option-cpu--image", "scipy")
        page.locator("input[name=interface][value=notebook]").check()
        page.click("#spawn_form button[type=submit]")
        demo_hub.wait_for(lambda: (demo_hub.server("bob") or {}).get("ready"), what="bob's server")
        options = demo_hub.api("GET", "/users/bob").json()["servers"][""]["user_options"]
        assert options == {"profile": "cpu", "resources": "mem_14_gib", "image": "scipy", "interface": "notebook"}
    finally:
        if demo_hub.server("bob"):
            demo_hub.stop_server("bob")
        context.close()


def test_the_cost_pages_on_a_phone_in_dark_mode(browser, budget_hub, tmp_path):
    """The community costs and a student's own costs at 390 px, dark: nothing wider than
    the phone, the charts drawn in the theme, the budget as text beside its bar."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark")
    page = context.new_page()
    try:
        log_in(page, budget_hub.url, "alice", budget_hub.password)
        page.evaluate("document.documentElement.setAttribute('data-bs-theme', 'dark')")
        page.goto(f"{budget_hub.url}/services/cost/admin?aggregate=user")
        page.evaluate("document.documentElement.setAttribute('data-bs-theme', 'dark')")
        page.wait_for_selector("#cost-chart .main-svg")
        page.wait_for_selector(".twoi2c-budget-chart .main-svg")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        tick = page.locator("#cost-chart .xtick text").first
        expect(tick).to_have_css("fill", re.compile(r"rgb\((2[0-5]\d|1[5-9]\d), "))
        header = page.locator("#cost-totals thead th", has_text="Total")
        expect(header).to_have_attribute("aria-sort", "descending")
        expect(page.locator(".twoi2c-budget-status[data-budget=community]")).to_contain_text("of 200.00 USD")
        # the services' pages carry the same credits as the hub's
        expect(page.locator(".twoi2c-footer")).to_contain_text("Operated by The Example Operators")
        screenshot(page, "community-costs-phone-dark")
        context.clear_cookies()
        log_in(page, budget_hub.url, "bob", budget_hub.password)
        page.goto(f"{budget_hub.url}/services/cost/")
        expect(page.locator(".twoi2c-budget-status[data-budget=students-weekly]")).to_contain_text(
            "8.40 USD of 10.00 USD"
        )
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        page.screenshot(path=str(tmp_path / "cost-phone.png"), full_page=True)
        context.close()
