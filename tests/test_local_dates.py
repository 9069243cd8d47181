"""Dates and numbers a person reads, written as their browser's locale writes them (issue 25,
item 8).

The server writes each date as a `<time datetime="YYYY-MM-DD">` (a month as "YYYY-MM")
with an English fallback; one script on every page writes it in the reader's locale. Here
a German reader (Chromium with de-DE) sees a budget's reset day on the home page, the spawn
page and the cost page, the statement's month and period and the community's active days
as German writes them -- checked against the Unicode CLDR's German forms (Babel), not
against the browser's own formatter -- and every page stays clean under axe-core. Text
for machines keeps ISO dates: the budget API's words are unchanged.

Numbers the same way: each is a `<data value="1234.56">` written "1,234.56", which the page's
script writes as the reader's locale does with as many decimals; a German reader sees money
and hours as "1.234,56" (Babel's format_decimal), tables still sort by the value, not by
the words, and the charts' numbers use the same separators."""

from datetime import UTC, date, datetime, timedelta

import pytest
import requests
import yaml
from babel.dates import format_skeleton
from babel.numbers import format_decimal, get_decimal_symbol, get_group_symbol
from browsing import PHONE, audit, log_in
from playwright.sync_api import expect

from twoi2c_hub import dates
from twoi2c_hub.accounting.db import make_engine, session_maker
from twoi2c_hub.accounting.events import ServerStart, ServerStarted, ServerStopped
from twoi2c_hub.accounting.models import HOUR_MS
from twoi2c_hub.accounting.recording import record
from twoi2c_hub.paths import demo_config


def german_day(day: str) -> str:
    """How German writes a day with a short month: '1. Jan. 2027'."""
    return format_skeleton("yMMMd", date.fromisoformat(day), locale="de_DE")


def german_month(month: str) -> str:
    """How German writes a month: 'Dezember 2026'."""
    return format_skeleton("yMMMM", date.fromisoformat(month + "-01"), locale="de_DE")


def german_day_month(day: date) -> str:
    """How German writes a day of a month on a chart's axis: '1. März'."""
    return format_skeleton("MMMd", day, locale="de_DE")


def german_number(value: float, decimals: int) -> str:
    """How German writes a number with `decimals` decimals: '1.234,56'."""
    pattern = "#,##0" + ("." + "0" * decimals if decimals else "")
    return format_decimal(round(value, decimals), format=pattern, locale="de_DE", decimal_quantization=True)


def next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


# --- the filters ---------------------------------------------------------------------------


def test_a_day_and_a_month_are_time_elements_with_a_readable_fallback():
    assert dates.day("2027-01-01") == '<time class="twoi2c-date" datetime="2027-01-01">1 Jan 2027</time>'
    assert dates.day(date(2026, 9, 30)) == '<time class="twoi2c-date" datetime="2026-09-30">30 Sep 2026</time>'
    assert dates.month("2026-12") == '<time class="twoi2c-month" datetime="2026-12">December 2026</time>'
    # not a date: shown as it is, escaped
    assert dates.day("2026-02-30") == "2026-02-30"
    assert dates.day(None) == ""
    assert dates.month("2026-13") == "2026-13"
    assert dates.month("<b>") == "&lt;b&gt;"


def test_dates_in_text_are_marked_and_the_rest_escaped():
    text = "students <b>&</b>: 2.00 USD of 5.00 USD used (40 %); resets on 2027-01-01"
    assert dates.with_dates(text) == (
        "students &lt;b&gt;&amp;&lt;/b&gt;: 2.00 USD of 5.00 USD used (40 %); resets on "
        '<time class="twoi2c-date" datetime="2027-01-01">1 Jan 2027</time>'
    )
    # a moment, a longer number, an impossible day: left as they are
    # and a name with a day in it: an image tag, a path, a version
    for kept in ("at 2026-12-01T10:00Z", "id 12026-12-01", "on 2026-02-30", "v2026-12-01",
                 "quay.io/jupyter/scipy-notebook:2025-01-06", "/data/2025-01-06/x", "r.2025-01-06"):  # fmt: skip
        assert dates.with_dates(kept) == kept
    assert dates.with_dates(None) == ""


def test_a_number_is_a_data_element_with_its_value_rounded_as_shown():
    assert dates.number(1234.5678) == '<data class="twoi2c-number" value="1234.57">1,234.57</data>'
    assert dates.number(1234.5678, 0) == '<data class="twoi2c-number" value="1235">1,235</data>'
    assert dates.number("3", 1) == '<data class="twoi2c-number" value="3.0">3.0</data>'
    # as few decimals as it needs (cores): 0.5, 2
    assert dates.number(0.5, None) == '<data class="twoi2c-number" value="0.5">0.5</data>'
    assert dates.number(2.0, None) == '<data class="twoi2c-number" value="2">2</data>'
    assert dates.number(-0.001) == '<data class="twoi2c-number" value="0.00">0.00</data>'  # not "-0.00"
    # not a number: shown as it is, escaped
    assert dates.number(None) == ""
    assert dates.number("<b>") == "&lt;b&gt;"
    assert dates.number(float("nan")) == "nan"
    assert dates.number(True) == "True"


def test_figures_in_text_are_marked_beside_its_dates_and_the_rest_escaped():
    text = "students <b>&</b>: 2.00 USD of 1,234.50 USD used (40 %); resets on 2027-01-01."
    assert dates.with_dates_and_numbers(text) == (
        'students &lt;b&gt;&amp;&lt;/b&gt;: <data class="twoi2c-number" value="2.00">2.00</data> USD of '
        '<data class="twoi2c-number" value="1234.50">1,234.50</data> USD used (40 %); resets on '
        '<time class="twoi2c-date" datetime="2027-01-01">1 Jan 2027</time>.'
    )
    assert dates.with_dates_and_numbers("1.5 CPU core-hours") == (
        '<data class="twoi2c-number" value="1.5">1.5</data> CPU core-hours'
    )
    assert dates.with_dates_and_numbers("'R 4.3' peaked under 6.3 GiB; 1,500 GPU-hours") == (
        '&#39;R 4.3&#39; peaked under <data class="twoi2c-number" value="6.3">6.3</data> GiB; '
        '<data class="twoi2c-number" value="1500">1,500</data> GPU-hours'
    )
    # small whole numbers, a year, a name's digits, versions, a number without a unit: left
    for kept in ("cohort 2026", "gpu-2.5 GiB", "v1.2 USD", "image 1.2.3 GiB", "40 %", "Python 3.11 image", "2.5"):
        assert dates.with_dates_and_numbers(kept) == kept
    assert dates.with_dates_and_numbers(None) == ""


def test_the_hubs_templates_get_the_filters_beside_an_operators_own_extensions():
    from traitlets.config import Config

    from twoi2c_hub import configure
    from twoi2c_hub.paths import examples_dir

    c = Config()
    c.JupyterHub.jinja_environment_options = {"extensions": ["jinja2.ext.do"], "trim_blocks": True}
    for _ in range(2):  # configured twice (a config file that calls it again): named once
        configure(c, examples_dir() / "demo-community.yaml")
    assert c.JupyterHub.jinja_environment_options == {
        "extensions": ["jinja2.ext.do", "twoi2c_hub.dates.LocalDates"],
        "trim_blocks": True,
    }


# --- in Chromium, in German --------------------------------------------------------------


@pytest.fixture(scope="module")
def hub(hub_factory, tmp_path_factory):
    folder = tmp_path_factory.mktemp("local-dates")
    config = demo_config()
    config["culling"] = {"enabled": False}
    database = f"sqlite:///{folder / 'usage.sqlite'}"
    config["usage"] = {"reconcile_interval": 1.0, "database_url": database}
    config["budgets"] = {
        "budgets": [{"name": "students-monthly", "display_name": "Students' monthly budget", "applies_to": "group",
                     "names": ["students"], "limit": 5, "period": "month",
                     "thresholds": [{"at": 100, "action": "deny"}]}],
    }  # fmt: skip
    (folder / "community.yaml").write_text(yaml.safe_dump(config))
    client = hub_factory(folder / "community.yaml", "local-dates")
    for service in ("usage", "cost"):
        client.wait_for(
            lambda s=service: requests.get(f"{client.url}/services/{s}/health", timeout=10).ok, what=service
        )
    # bob used a server for an hour, two hours ago: a day among the community's active days
    started = datetime.now(UTC) - timedelta(hours=2)
    start_ms = int(started.timestamp() * 1000)
    start = ServerStart("bob", "", start_ms, profile="cpu", cpu_guarantee=1.0, cpu_limit=1.0,
                        mem_guarantee_bytes=2 * 2**30, mem_limit_bytes=4 * 2**30, groups=["students"])  # fmt: skip
    # carol had a GPU server for 290 days, up to 10 days ago (thousands of dollars and
    # hours) and dan a small one for 20 hours: figures with group separators and decimals
    long_ago = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=300)
    carol_ms = int(long_ago.timestamp() * 1000)
    carol = ServerStart("carol", "", carol_ms, profile="gpu", cpu_guarantee=3.5, cpu_limit=4.0,
                        mem_guarantee_bytes=14 * 2**30, mem_limit_bytes=14 * 2**30, gpu_count=1,
                        gpu_type="nvidia-tesla-t4", groups=[])  # fmt: skip
    dan_ms = carol_ms + 24 * HOUR_MS
    dan = ServerStart("dan", "", dan_ms, profile="cpu", cpu_guarantee=1.0, cpu_limit=1.0,
                      mem_guarantee_bytes=2 * 2**30, mem_limit_bytes=4 * 2**30, groups=[])  # fmt: skip
    engine = make_engine(database)
    with session_maker(engine)() as db:
        record(db, [ServerStarted(start), ServerStarted(carol), ServerStarted(dan)])
        record(db, [ServerStopped("bob", "", start_ms + HOUR_MS, "user", start_ms)])
        record(db, [ServerStopped("carol", "", carol_ms + 290 * 24 * HOUR_MS, "user", carol_ms)])
        record(db, [ServerStopped("dan", "", dan_ms + 20 * HOUR_MS, "user", dan_ms)])
        db.commit()
    engine.dispose()
    client.used_on = started.date().isoformat()
    client.long_window = (long_ago.date().isoformat(), (long_ago + timedelta(days=289)).date().isoformat())
    return client


def expect_german_numbers(page):
    """Every number on the page as German writes its value, with the decimals it has."""
    figures = page.locator("data.twoi2c-number")
    expect(figures).not_to_have_count(0)
    values = figures.evaluate_all("figures => figures.map(f => f.getAttribute('value'))")
    expect(figures).to_have_text([german_number(float(v), len(v.partition(".")[2])) for v in values])


def expect_german_day(time, day: str):
    expect(time).to_have_attribute("datetime", day)
    expect(time).to_have_text(german_day(day))


def test_a_german_reader_sees_each_date_as_german_writes_it(browser, hub):
    reset = next_month(datetime.now(UTC).date()).isoformat()
    context = browser.new_context(locale="de-DE", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        log_in(page, hub.url, "bob", hub.password)
        # the budget's reset day, wherever bob reads his budget
        page.goto(f"{hub.url}/hub/home")
        budget = page.locator(".twoi2c-home-budget")
        expect(budget).to_contain_text("Students' monthly budget")
        expect(budget).to_contain_text("resets on")
        expect_german_day(budget.locator("time"), reset)
        expect(budget).not_to_contain_text(reset)  # not the ISO form, nor the English fallback
        expect(budget).to_contain_text(f"of {german_number(5, 2)} USD")  # the limit, "5,00"
        expect_german_numbers(page)
        audit(page, "dates-de-home-light-desktop")
        page.goto(f"{hub.url}/hub/spawn")
        expect_german_day(page.locator(".twoi2c-budget time"), reset)
        expect_german_numbers(page)
        audit(page, "dates-de-spawn-light-desktop")
        page.goto(f"{hub.url}/services/cost/")
        expect_german_day(page.locator(".twoi2c-budget-status time"), reset)
        expect_german_numbers(page)
        audit(page, "dates-de-costs-light-desktop")
        # the API's words for machines keep the ISO day
        token = hub.user_token("bob")
        answer = requests.get(
            f"{hub.url}/services/cost/api/v1/budgets", headers={"Authorization": f"token {token}"}, timeout=30
        )
        assert answer.ok, answer.text
        assert f"resets on {reset}" in answer.text and "<time" not in answer.text

        # the admin: this month's statement (so far, to today), last month's (whole), the index
        page.context.clear_cookies()
        log_in(page, hub.url, "admin", hub.password)
        month = datetime.now(UTC).strftime("%Y-%m")
        page.goto(f"{hub.url}/services/cost/statements/{month}")
        heading = page.locator("h1 time")
        expect(heading).to_have_attribute("datetime", month)
        expect(heading).to_have_text(german_month(month))
        period = page.locator("#statement-period time")
        expect(period).to_have_count(2)
        expect(period.first).to_have_text(german_month(month))
        today = period.nth(1).get_attribute("datetime")
        assert today in (
            datetime.now(UTC).date().isoformat(),
            (datetime.now(UTC) - timedelta(minutes=5)).date().isoformat(),
        )
        expect_german_day(period.nth(1), today)
        expect_german_numbers(page)
        audit(page, "dates-de-statement-light-desktop")
        last = date.fromisoformat(month + "-01") - timedelta(days=1)
        page.goto(f"{hub.url}/services/cost/statements/{last:%Y-%m}")
        period = page.locator("#statement-period time")
        expect(period).to_have_count(2)
        expect_german_day(period.first, last.replace(day=1).isoformat())
        expect_german_day(period.nth(1), last.isoformat())
        page.goto(f"{hub.url}/services/cost/statements/")
        expect(page.locator("#statement-months time").first).to_have_text(german_month(month))
        audit(page, "dates-de-statements-light-desktop")
        # the community's people per day: bob's day among them
        page.goto(f"{hub.url}/services/usage/admin")
        # (and in the charts as tables: usage per day, people per day)
        day = page.locator(f"time.twoi2c-date[datetime='{hub.used_on}']")
        expect(day).not_to_have_count(0)
        expect(day).to_have_text([german_day(hub.used_on)] * day.count())
        audit(page, "dates-de-community-usage-light-desktop")
    finally:
        context.close()


def hours_shown(value: float) -> int:
    """The decimals the pages show hours with (usage/base.html): 2 under 10, 1 under 100."""
    return 2 if value < 10 else 1 if value < 100 else 0


def test_a_german_reader_sees_money_and_hours_as_german_writes_them(browser, hub):
    context = browser.new_context(locale="de-DE", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        log_in(page, hub.url, "admin", hub.password)
        start, end = hub.long_window
        page.goto(f"{hub.url}/services/cost/admin?aggregate=user&start={start}&end={end}")
        expect(page.locator("#cost-chart .main-svg").first).to_be_visible(timeout=15_000)
        rows = page.locator("#cost-totals tbody tr")
        expect(rows).to_have_count(2)  # carol and dan (bob's hour is not in the window)
        carol = rows.filter(has_text="carol")
        cost = carol.locator("td").nth(1)
        value = float(cost.get_attribute("data-value"))
        assert value >= 1000, value  # a group separator to write
        expect(cost).to_have_text(german_number(value, 2))  # "3.612,34"
        for person in ("carol", "dan"):
            server_hours = rows.filter(has_text=person).locator("td").nth(2)
            value = float(server_hours.get_attribute("data-value"))
            expect(server_hours).to_have_text(german_number(value, hours_shown(value)))  # "6.960", "20,0"
        # the chart's numbers use the same separators: decimal comma, group point
        separators = page.locator("#cost-chart").evaluate("element => element.layout.separators")
        assert separators == get_decimal_symbol("de_DE") + get_group_symbol("de_DE") == ",."
        # and its date axis the day and month as German writes them ("1. März"), each tick a day
        # of the period
        first = date.fromisoformat(start)
        days = {german_day_month(first + timedelta(days=n)) for n in range((date.fromisoformat(end) - first).days + 1)}
        ticks = page.locator("#cost-chart .xtick text").all_text_contents()
        assert ticks and set(ticks) <= days, ticks
        audit(page, "numbers-de-costs-light-desktop")

        # sorted by server hours, by their values: carol's "6.960" (read as words, 6.96) before
        # dan's "20,0" (20), then the other way round
        header = page.locator("#cost-totals th", has_text="Server hours")
        names = "rows => rows.map(r => r.cells[0].textContent.trim())"
        header.locator("button").click()
        expect(header).to_have_attribute("aria-sort", "descending")
        assert rows.evaluate_all(names) == ["carol", "dan"]
        header.locator("button").click()
        expect(header).to_have_attribute("aria-sort", "ascending")
        assert rows.evaluate_all(names) == ["dan", "carol"]

        # the usage page: hours, sessions and GiB in German, the chart with German separators
        page.goto(f"{hub.url}/services/usage/admin?aggregate=user&start={start}&end={end}")
        expect(page.locator("#usage-chart .main-svg").first).to_be_visible(timeout=15_000)
        carol = page.locator("#usage-totals tbody tr").filter(has_text="carol")
        hours = carol.locator("td").nth(1)
        value = float(hours.get_attribute("data-value"))
        expect(hours).to_have_text(german_number(value, hours_shown(value)))
        assert page.locator("#usage-chart").evaluate("element => element.layout.separators") == ",."
        audit(page, "numbers-de-community-usage-light-desktop")
    finally:
        context.close()


DESKTOP = {"width": 1280, "height": 900}
SCHEMES = [("dark", DESKTOP, "dark-desktop"), ("light", PHONE, "light-phone"), ("dark", PHONE, "dark-phone")]


@pytest.mark.parametrize("scheme, viewport, name", SCHEMES)
def test_a_german_reader_in_dark_and_on_a_phone_sees_the_same_german_figures(browser, hub, scheme, viewport, name):
    """The home page and the cost page, in dark and on a phone: the days and every number
    as German writes them, axe clean (the light desktop pages are above)."""
    reset = next_month(datetime.now(UTC).date()).isoformat()
    context = browser.new_context(locale="de-DE", viewport=viewport, color_scheme=scheme)
    page = context.new_page()
    try:
        log_in(page, hub.url, "bob", hub.password)
        page.goto(f"{hub.url}/hub/home")
        expect_german_day(page.locator(".twoi2c-home-budget time"), reset)
        expect_german_numbers(page)
        audit(page, f"dates-de-home-{name}")
        page.goto(f"{hub.url}/services/cost/")
        expect_german_day(page.locator(".twoi2c-budget-status time"), reset)
        expect_german_numbers(page)
        # the budget by its display name, never its key
        expect(page.locator(".twoi2c-budget-status strong")).to_have_text("Students' monthly budget · bob")
        audit(page, f"dates-de-costs-{name}")
    finally:
        context.close()
