"""The pages people meet, walked in Chromium as a student (bob), a researcher (alice), a
student past a budget (dan) and a community admin (carol, not a hub admin), on the demo
community's hub at / and again under base_url=/community/.

Every page visited is audited with axe-core (no serious or critical violation) and saved
as a screenshot, light and dark, desktop and phone (the folder is printed at the end)."""

import time as pytime
from datetime import UTC, date, datetime, time, timedelta

import pytest
import yaml
from browsing import PHONE, audit, log_in
from playwright.sync_api import expect

from twoi2c_hub.accounting.db import make_engine, session_maker
from twoi2c_hub.accounting.events import ServerStart, ServerStarted, ServerStopped
from twoi2c_hub.accounting.models import HOUR_MS
from twoi2c_hub.accounting.recording import record
from twoi2c_hub.paths import demo_config

pytestmark = pytest.mark.hub

SUPPORT = "https://example.org/demo-community/support"


def record_session(database_url, username, started: datetime, hours: float, groups, profile="cpu", gpus=0, cpus=1.0):
    """A session that started and stopped; (start, stop) as datetimes."""
    start_ms = int(started.timestamp() * 1000)
    start = ServerStart(username, "", start_ms, profile=profile, cpu_guarantee=cpus, cpu_limit=cpus,
                        mem_guarantee_bytes=2 * 2**30, mem_limit_bytes=4 * 2**30, gpu_count=gpus,
                        gpu_type="nvidia-tesla-t4" if gpus else None, groups=list(groups))  # fmt: skip
    engine = make_engine(database_url)
    with session_maker(engine)() as db:
        record(db, [ServerStarted(start)])
        record(db, [ServerStopped(username, "", start_ms + int(hours * HOUR_MS), "user", start_ms)])
        db.commit()
    engine.dispose()
    return started, started + timedelta(hours=hours)


def first_of_month(day):
    return day.replace(day=1)


def first_of_next_month(day):
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def clear_of_the_month_end(minutes: float = 15) -> datetime:
    """Now, once the UTC month will not end within `minutes` (waiting it out if it would):
    "this month" and "last month" then mean the same months from seeding to checking."""
    now = datetime.now(UTC)
    next_month = datetime.combine(first_of_next_month(now.date()), time(), UTC)
    if next_month - now < timedelta(minutes=minutes):
        pytime.sleep((next_month - now).total_seconds() + 1)
        now = datetime.now(UTC)
    return now


def days_with_use(sessions, days: list[str]) -> set[str]:
    """Which of `days` (ISO dates, UTC) each (start, stop) of `sessions` has time in."""
    used = set()
    for start, stop in sessions:
        day = start.date()
        while datetime.combine(day, time(), UTC) < stop:
            used.add(day.isoformat())
            day += timedelta(days=1)
    return used & set(days)


def overlapping(sessions, first_day: str, last_day: str) -> list:
    """The sessions with time between the start of `first_day` and the end of `last_day`."""
    start = datetime.combine(date.fromisoformat(first_day), time(), UTC)
    end = datetime.combine(date.fromisoformat(last_day) + timedelta(days=1), time(), UTC)
    return [(a, b) for a, b in sessions if a < end and b > start]


# the GPU hours each researcher used last month, as recorded below
GPU_HOURS_LAST_MONTH = {"alice": 3.0, "erin": 5.0}


@pytest.fixture(scope="module", params=["/", "/community/"], ids=["root", "base-url"])
def journey_hub(request, hub_factory, tmp_path_factory):
    work = tmp_path_factory.mktemp("journeys")
    config = demo_config()
    config["culling"] = {"enabled": False}
    config["usage"] = {"reconcile_interval": 1.0, "database_url": f"sqlite:///{work / 'usage.sqlite'}"}
    config["auth"]["users"].update(
        {
            "carol": {"groups": ["community-admins"]},
            "dan": {"groups": ["workshop"]},
            "erin": {"groups": ["researchers"]},
        }
    )
    config["community_admin_groups"] = ["community-admins"]
    config["budgets"] = {
        "budgets": [
            {
                "name": "workshop-monthly",
                "applies_to": "group",
                "names": ["workshop"],
                "limit": 1,
                "period": "month",
                "thresholds": [{"at": 100, "action": "deny"}],
            }
        ]
    }
    path = work / "community.yaml"
    path.write_text(yaml.safe_dump(config))
    hub = hub_factory(path, "journeys-hub", base_url=request.param)
    hub.suffix = "" if request.param == "/" else "-base-url"
    database = config["usage"]["database_url"]
    now = clear_of_the_month_end()
    # bob: one session, two hours ago (sparse data); the days it touches depend on the hour
    hub.sessions = {"bob": [record_session(database, "bob", now - timedelta(hours=2), 1.0, ["students"])]}
    # dan: 1.26 USD this month at the demo's 0.0316 USD a core-hour (40 cores for an hour,
    # more cores for less time just after the month began): past his 1 USD
    month_start = datetime.combine(first_of_month(now.date()), time(), UTC)
    started = max(now - timedelta(hours=2), month_start)
    hours = min(1.0, (now - started).total_seconds() / 3600 / 2)
    record_session(database, "dan", started, hours, ["workshop"], cpus=40.0 / hours)
    # last month, the researchers' GPU servers (mid-month, far from either edge)
    middle = first_of_month(first_of_month(now.date()) - timedelta(days=1)) + timedelta(days=14)
    noon = datetime(middle.year, middle.month, middle.day, 12, tzinfo=UTC)
    for username, hours in GPU_HOURS_LAST_MONTH.items():
        record_session(database, username, noon, hours, ["researchers"], profile="gpu", gpus=1)
    hub.sessions["bob"].append(record_session(database, "bob", noon, 4.0, ["students"]))  # CPU only: no GPU hours
    return hub


def audit_every_way(browser, hub, url, name, username=None, ready=None):
    """The page at `url` audited and saved in light and dark, on a desktop and on a phone;
    `ready`: a selector to wait for (a chart drawn) before looking."""
    ways = [(s, d) for s in ("light", "dark") for d in ("desktop", "phone")]
    if hub.suffix:  # under a base_url: the same page in one way suffices
        ways = ways[:1]
    for scheme, device in ways:
        viewport = PHONE if device == "phone" else {"width": 1280, "height": 900}
        context = browser.new_context(viewport=viewport, color_scheme=scheme)
        page = context.new_page()
        try:
            if username:
                log_in(page, hub.url, username, hub.password)
            page.goto(url)
            if ready:
                page.wait_for_selector(ready, timeout=15_000)
            expect(page.locator("html")).to_have_attribute("data-bs-theme", scheme)
            audit(page, f"{name}-{scheme}-{device}{hub.suffix}")
            if device == "phone":
                assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], name
        finally:
            context.close()


def test_the_login_page_says_whose_hub_it_is_and_who_may_use_it(page, browser, journey_hub):
    hub = journey_hub
    page.goto(f"{hub.url}/hub/login")
    expect(page.locator(".twoi2c-login-name")).to_have_text("Demo Community Hub")
    logo = page.locator(".twoi2c-login-logo")
    expect(logo).to_be_visible()
    assert logo.evaluate("img => img.complete && img.naturalWidth > 0")
    expect(page.locator(".twoi2c-access")).to_contain_text("For the members of the Demo Community")
    expect(page.locator(".twoi2c-access a")).to_have_attribute("href", SUPPORT)
    expect(page.locator("footer .twoi2c-credits, .twoi2c-footer .twoi2c-credits")).to_contain_text("Operated by")
    expect(page.locator("#login_submit")).to_have_count(1)  # one way to log in: one button
    audit_every_way(browser, hub, f"{hub.url}/hub/login", "login")


def test_a_student_finds_home_their_profile_a_launch_link_and_their_usage(page, browser, journey_hub):
    hub = journey_hub
    prefix = hub.hub.base_url
    log_in(page, hub.url, "bob", hub.password)
    page.goto(f"{hub.url}/hub/home")
    links = page.locator(".twoi2c-home-links a")
    expect(links).to_have_text(["Your usage", "Your costs"])
    expect(page.locator("#thenavbar .nav-link", has_text="Your usage")).to_have_attribute(
        "href", f"{prefix}services/usage/"
    )
    expect(page.locator("#thenavbar .nav-link", has_text="Community usage")).to_have_count(0)
    audit_every_way(browser, hub, f"{hub.url}/hub/home", "home-student", "bob")

    # the spawn page: bob's one profile, in plain words, no cloud names
    page.goto(f"{hub.url}/hub/spawn")
    expect(page.locator(".twoi2c-profile")).to_have_count(1)
    expect(page.locator("#twoi2c-profiles")).not_to_contain_text("n2-highmem")
    expect(page.locator("#twoi2c-profiles")).to_contain_text("GiB")
    audit_every_way(browser, hub, f"{hub.url}/hub/spawn", "spawn-student", "bob")

    # a launch link from the course page: the choices and the repository, for bob to confirm
    page.goto(
        f"{hub.url}/hub/spawn?profile=cpu&resources=mem_14_gib&image=r"
        "&repo=https://github.com/example/course&urlpath=lab/tree/course/week1.ipynb"
    )
    expect(page.locator(".twoi2c-from-link")).to_be_visible()
    expect(page.locator("input[name='profile-option-cpu--resources'][value=mem_14_gib]")).to_be_checked()
    expect(page.locator("#profile-option-cpu--image")).to_have_value("r")
    expect(page.locator(".twoi2c-git-pull")).to_contain_text("https://github.com/example/course")
    assert page.locator("#spawn_form").get_attribute("action").startswith(f"{prefix}hub/spawn")
    audit(page, f"spawn-launch-link{hub.suffix}")
    assert hub.server("bob") is None  # a link never starts a server

    # his usage: a bar for each day of the last 30 he used, a row for each session in them
    # (which days those are depends on the date and the hour: recomputed from what was recorded)
    page.goto(f"{hub.url}/services/usage/")
    page.wait_for_selector("#usage-chart .main-svg", timeout=15_000)
    chart = page.evaluate("JSON.parse(document.querySelector('#usage-chart-data').textContent)")
    days, values = chart["x"], chart["series"][0]["y"]
    assert len(values) == len(days) == 30
    assert {day for day, value in zip(days, values) if value} == days_with_use(hub.sessions["bob"], days)
    shown_sessions = overlapping(hub.sessions["bob"], days[0], days[-1])
    expect(page.locator("#usage-sessions tbody tr")).to_have_count(len(shown_sessions))
    audit_every_way(browser, hub, f"{hub.url}/services/usage/", "usage-student", "bob", ready="#usage-chart .main-svg")
    page.goto(f"{hub.url}/services/usage/?start=2020-01-01&end=2020-01-31")
    expect(page.locator(".twoi2c-chart-empty")).to_have_text("No usage in this period.")
    audit(page, f"usage-empty-month{hub.suffix}")
    audit_every_way(browser, hub, f"{hub.url}/services/cost/", "costs-student", "bob")


def test_a_researcher_sees_the_gpu_profile_a_student_does_not(page, journey_hub):
    hub = journey_hub
    log_in(page, hub.url, "alice", hub.password)
    page.goto(f"{hub.url}/hub/spawn")
    expect(page.locator(".twoi2c-profile")).to_have_count(2)
    gpu = page.locator(".twoi2c-profile[data-profile=gpu]")
    expect(gpu).to_contain_text("GPU")
    expect(page.locator("input[name='profile-option-cpu--resources'][value=whole-node]")).to_have_count(1)
    # this hub runs local processes: the GPU server cannot be picked, and says why
    expect(gpu.locator("input[name=profile]")).to_be_disabled()
    expect(gpu.locator(".twoi2c-refused")).to_have_text("Not available: this hub cannot give its servers a GPU.")
    expect(gpu.locator(".twoi2c-price")).to_have_count(0)
    audit(page, f"spawn-researcher{hub.suffix}")


def test_a_student_past_the_budget_is_told_why_and_whom_to_ask(page, browser, journey_hub):
    hub = journey_hub
    log_in(page, hub.url, "dan", hub.password)
    page.goto(f"{hub.url}/hub/spawn")
    expect(page.locator(".twoi2c-budget")).to_contain_text("Your budget is used up")
    # nothing may start: Start is disabled, the reason right above it
    start = page.locator("#spawn_form button[type=submit]")
    expect(start).to_be_disabled()
    expect(page.locator("#twoi2c-start-blocked")).to_have_text("No server can start: your budget is used up.")
    expect(start).to_have_attribute("aria-describedby", "twoi2c-start-blocked")
    # a page opened before the budget ran out still sends the form: the hub refuses it
    page.evaluate("document.querySelector('#spawn_form').submit()")
    refusal = page.locator(".twoi2c-refusal")
    reset = first_of_next_month(datetime.now(UTC).date()).isoformat()
    expect(refusal).to_contain_text("USD of 1.00 USD used")
    expect(refusal).to_contain_text("resets on")
    expect(refusal.locator("time")).to_have_attribute("datetime", reset)  # in the reader's locale
    expect(refusal.locator("a.twoi2c-ask-access")).to_have_attribute("href", SUPPORT)
    expect(refusal).not_to_contain_text("Error:")
    # said once: the form under the refusal does not repeat the budget's figures
    expect(page.locator(".twoi2c-budget")).to_have_count(0)
    expect(page.get_by_text("USD of 1.00 USD used")).to_have_count(1)
    # the form is drawn again, a profile selected, Start still disabled with the reason
    expect(page.locator("input[name=profile]:checked")).to_have_count(1)
    expect(page.locator("#spawn_form button[type=submit]")).to_be_disabled()
    expect(page.locator("#twoi2c-start-blocked")).to_have_text("No server can start: your budget is used up.")
    assert hub.server("dan") is None
    audit(page, f"spawn-refused-budget{hub.suffix}")


def test_a_community_admin_ranks_last_months_gpu_hours_in_three_clicks(page, browser, journey_hub):
    hub = journey_hub
    log_in(page, hub.url, "carol", hub.password)
    page.goto(f"{hub.url}/hub/home")
    expect(page.locator(".twoi2c-home-links a")).to_have_text(
        ["Your usage", "Your costs", "Community usage", "Community costs", "Statements", "Running now"]
    )
    page.locator("#thenavbar .nav-link", has_text="Community usage").click()  # 1
    page.locator(".twoi2c-presets a", has_text="Last month").click()  # 2
    page.locator(".twoi2c-metrics a", has_text="GPU hours").click()  # 3
    page.wait_for_selector("#usage-chart .main-svg", timeout=15_000)
    header = page.locator("#usage-totals th", has_text="GPU hours")
    expect(header).to_have_attribute("aria-sort", "descending")
    rows = page.locator("#usage-totals tbody tr")
    names = [n.strip() for n in rows.locator("td:first-child").all_inner_texts()]
    ranking = sorted(GPU_HOURS_LAST_MONTH, key=GPU_HOURS_LAST_MONTH.get, reverse=True)
    assert names[: len(ranking)] == ranking, names
    column = page.locator("#usage-totals thead th").all_inner_texts().index(header.inner_text())
    shown = rows.first.locator("td").nth(column).get_attribute("data-value")
    assert float(shown) == pytest.approx(GPU_HOURS_LAST_MONTH[ranking[0]])
    last_month = page.url
    audit_every_way(browser, hub, last_month, "community-usage-gpu", "carol", ready="#usage-chart .main-svg")
    audit_every_way(
        browser, hub, f"{hub.url}/services/cost/admin", "community-costs", "carol", ready="#cost-chart .main-svg"
    )
    # by group, the total row is everyone's, each session once, and says so
    assert "aggregate=user" in last_month
    page.goto(last_month.replace("aggregate=user", "aggregate=group"))
    total = page.locator("#usage-totals tfoot tr")
    expect(total.locator("th")).to_contain_text("each session once")
    column = page.locator("#usage-totals thead th").all_inner_texts().index(header.inner_text())
    gpu_hours = float(total.locator("td").nth(column - 1).get_attribute("data-value"))
    assert gpu_hours == pytest.approx(sum(GPU_HOURS_LAST_MONTH.values()))
    audit_every_way(browser, hub, page.url, "community-usage-by-group", "carol", ready="#usage-chart .main-svg")
    month = datetime.now(UTC).strftime("%Y-%m")
    audit_every_way(browser, hub, f"{hub.url}/services/cost/statements/{month}", "statement", "carol")


def test_a_missing_page_keeps_the_hubs_look_and_the_way_home(page, journey_hub):
    hub = journey_hub
    prefix = hub.hub.base_url
    log_in(page, hub.url, "bob", hub.password)
    for url, name in (
        (f"{hub.url}/hub/no-such-page", "404-hub"),
        (f"{hub.url}/services/usage/no-such-page", "404-usage"),
        (f"{hub.url}/services/cost/no-such-page", "404-cost"),
    ):
        response = page.goto(url)
        assert response.status == 404, url
        expect(page.locator("h1")).not_to_contain_text("None")
        expect(page.locator("#logout")).to_be_visible()  # the user menu is still there
        expect(page.locator(".twoi2c-community-name")).to_have_text("Demo Community Hub")
        assert page.locator(f"a[href='{prefix}hub/home']").count() >= 1
        audit(page, f"{name}{hub.suffix}")
