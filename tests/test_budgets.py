"""Budget state on SQLite and PostgreSQL: spending recomputed here from the raw sessions
and the prices; thresholds, top-ups, extensions, the rules that combine several budgets,
and when a rolling budget lets a person start again."""

import dataclasses
from datetime import UTC, datetime

import pytest
from cost_figures import PRICING, expected, record_all

from twoi2c_hub.accounting.budgets import Budget, Threshold, combine, decide, describe, hourly_in_unit, status
from twoi2c_hub.accounting.costs import CostBasis
from twoi2c_hub.accounting.events import ServerStart
from twoi2c_hub.accounting.models import DAY_MS, HOUR_MS, LedgerEntry
from twoi2c_hub.catalog import INSTANCE_TYPES, GiB, ServerResources

BASIS = CostBasis(PRICING, INSTANCE_TYPES)
MONTH_START = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1000)
NOW = MONTH_START + 20 * DAY_MS + 6 * HOUR_MS  # 2026-11-21T06:00Z


def gpu_session(user, start, hours, groups=("students",)):
    s = ServerStart(
        username=user,
        server_name="",
        started_ms=start,
        profile="gpu",
        cpu_guarantee=3.5,
        mem_guarantee_bytes=14 * GiB,
        gpu_count=1,
        gpu_type="nvidia-tesla-t4",
        groups=list(groups),
    )
    return s, start + int(hours * HOUR_MS)


def history():
    """bob: 10 h in October (not this month), 6 h on Nov 2 (October's prices: 0.56 an
    hour), 8 h on
    Nov 10 (November's: 0.545); ann: 2 h on Nov 20, in students and researchers."""
    return [
        gpu_session("bob", MONTH_START - 5 * DAY_MS, 10),
        gpu_session("bob", MONTH_START + 1 * DAY_MS, 6),
        gpu_session("bob", MONTH_START + 9 * DAY_MS, 8),
        gpu_session("ann", MONTH_START + 19 * DAY_MS, 2, groups=("students", "researchers")),
    ]


def bobs_month(sessions):
    return sum(expected(sessions, MONTH_START, NOW, "user", now=NOW)["bob"])


STUDENTS = Budget(
    "students-monthly",
    "group",
    ("students",),
    limit=9.0,
    thresholds=(Threshold(50, "warn"), Threshold(80, "restrict"), Threshold(100, "deny")),
)


def test_a_monthly_group_budget_counts_each_members_own_month(db):
    sessions = history()
    record_all(db, sessions)
    bob = status(db, BASIS, STUDENTS, "bob", "students", NOW)
    # 6 h at October's prices (Nov 2 is before the change on Nov 3) and 8 h at November's
    october_hour = 3.5 * 0.04 + 14 * 0.005 + 0.35
    november_hour = 3.5 * 0.05 + 14 * 0.005 + 0.30
    assert bob.used == pytest.approx(6 * october_hour + 8 * november_hour)
    assert bob.used == pytest.approx(bobs_month(sessions))
    assert bob.percent == pytest.approx(100 * bob.used / 9)
    assert bob.action == "restrict"  # 7.72 of 9: past 80 %
    assert bob.resets_ms == int(datetime(2026, 12, 1, tzinfo=UTC).timestamp() * 1000)
    assert describe(bob, "USD") == (
        f"students-monthly: {bob.used:,.2f} USD of 9.00 USD used ({bob.percent:.0f} %); resets on 2026-12-01"
    )
    ann = status(db, BASIS, STUDENTS, "ann", "students", NOW)
    assert ann.used == pytest.approx(2 * november_hour) and ann.action == "none"
    # with a display name, people read it instead of the short name
    named = status(db, BASIS, dataclasses.replace(STUDENTS, display_name="Students' monthly allowance"), "bob",
                   "students", NOW)  # fmt: skip
    assert describe(named, "USD").startswith(f"Students' monthly allowance: {bob.used:,.2f} USD of 9.00 USD")


def test_a_running_server_counts_until_now_and_a_top_up_lifts_the_limit(db):
    sessions = history() + [(gpu_session("bob", NOW - 3 * HOUR_MS, 0)[0], None)]  # running for 3 h
    record_all(db, sessions)
    bob = status(db, BASIS, STUDENTS, "bob", "students", NOW)
    assert bob.used == pytest.approx(bobs_month(sessions))
    assert bob.action == "deny"  # past 100 %
    db.add(LedgerEntry(budget="students-monthly", subject="bob", kind="topup", amount=5.0,
                       at_ms=NOW - HOUR_MS, by="admin", reason="project deadline"))  # fmt: skip
    # a top-up from last month does not count this month
    db.add(LedgerEntry(budget="students-monthly", subject="bob", kind="topup", amount=99.0,
                       at_ms=MONTH_START - DAY_MS, by="admin", reason="old"))  # fmt: skip
    db.commit()
    bob = status(db, BASIS, STUDENTS, "bob", "students", NOW)
    assert bob.limit == 14.0
    assert bob.action == "warn"  # 9.36 of 14: 67 %


def test_an_extension_suspends_deny_until_its_date(db):
    sessions = history() + [(gpu_session("bob", NOW - 3 * HOUR_MS, 0)[0], None)]
    record_all(db, sessions)
    db.add(LedgerEntry(budget="students-monthly", subject="bob", kind="extension", until_ms=NOW + DAY_MS,
                       at_ms=NOW, by="admin", reason="exam week"))  # fmt: skip
    db.commit()
    extended = status(db, BASIS, STUDENTS, "bob", "students", NOW)
    assert extended.action == "restrict"
    after = status(db, BASIS, STUDENTS, "bob", "students", NOW + 2 * DAY_MS)
    assert after.action == "deny"


def test_a_shared_group_budget_and_the_hub_budget(db):
    sessions = history()
    record_all(db, sessions)
    shared = Budget("students-shared", "group", ("students",), limit=100.0, per_person=False)
    hub = Budget("hub", "hub", (), limit=1000.0)
    month = expected(sessions, MONTH_START, NOW, "group", now=NOW)  # split: ann's session half to each group
    assert status(db, BASIS, shared, "students", "students", NOW).used == pytest.approx(sum(month["students"]))
    everyone = expected(sessions, MONTH_START, NOW, "user", now=NOW)
    assert status(db, BASIS, hub, "", None, NOW).used == pytest.approx(sum(sum(v) for v in everyone.values()))


def test_hours_budgets(db):
    sessions = history()
    record_all(db, sessions)
    gpu = Budget("gpu-hours", "user", ("bob",), limit=10.0, unit="gpu_hours")
    assert status(db, BASIS, gpu, "bob", None, NOW).used == pytest.approx(14.0)
    cpu = Budget("cpu-hours", "user", ("bob",), limit=100.0, unit="cpu_core_hours")
    assert status(db, BASIS, cpu, "bob", None, NOW).used == pytest.approx(14 * 3.5)
    memory = Budget("memory", "user", ("bob",), limit=150.0, unit="memory_gib_hours", rolling_days=30)
    within = status(db, BASIS, memory, "bob", None, NOW)  # October's 10 h is inside the 30 days too
    assert within.used == pytest.approx(24 * 14.0)
    assert describe(within, "USD").startswith("memory: 336.0 memory GiB-hours of 150.0 memory GiB-hours used")
    server = ServerResources(cpu_guarantee=2.0, mem_guarantee=6 * GiB)
    assert hourly_in_unit(BASIS, "memory_gib_hours", server, NOW) == pytest.approx(6.0)
    assert hourly_in_unit(BASIS, "cpu_core_hours", server, NOW) == pytest.approx(2.0)


def test_rules_that_combine_several_budgets(db):
    sessions = history()
    record_all(db, sessions)
    small = Budget("small", "user", ("bob",), limit=9.0)  # 7.72 used: warn (86 %)
    large = Budget("large", "group", ("students",), limit=100.0)  # none
    statuses = [status(db, BASIS, b, "bob", "students", NOW) for b in (small, large)]
    assert combine(statuses, "least_generous").decisive.budget is small
    assert combine(statuses, "least_generous").action == "warn"
    assert combine(statuses, "most_generous").decisive.budget is large
    assert combine(statuses, "most_generous").action == "none"
    summed = combine(statuses, "sum").decisive
    assert summed.limit == pytest.approx(109.0) and summed.used == pytest.approx(statuses[0].used)
    decision = decide(db, BASIS, [small, large, STUDENTS], "least_generous", "bob", {"students"}, NOW)
    assert decision.action == "restrict" and decision.decisive.budget is STUDENTS
    # ann is not in the user budget: only the group budget applies to her
    assert [s.budget.name for s in decide(db, BASIS, [small, large], "sum", "ann", {"students"}, NOW).statuses] == [
        "large"
    ]


def test_a_rolling_budget_says_when_enough_has_aged_out(db):
    sessions = history()
    record_all(db, sessions)
    rolling = Budget("gpu-week", "user", ("bob",), limit=5.0, unit="gpu_hours", rolling_days=14)
    # in the last 14 days (from Nov 7 06:00): the 8 h of Nov 10 -> 160 %, denied
    s = status(db, BASIS, rolling, "bob", None, NOW)
    assert s.used == pytest.approx(8.0) and s.action == "deny"
    # below 5 GPU-hours once the window starts after Nov 10 03:00 (00:00-08:00 that day):
    # 14 days later, to the minute
    assert s.resets_ms == int(datetime(2026, 11, 24, 3, 1, tzinfo=UTC).timestamp() * 1000)
    assert status(db, BASIS, rolling, "bob", None, s.resets_ms).action == "warn"  # 4.98 of 5
    assert status(db, BASIS, rolling, "bob", None, s.resets_ms - 2 * 60_000).action == "deny"


def test_spending_over_time_and_the_month_end_forecast(db):
    from twoi2c_hub.accounting.budgets import spending_over_time

    sessions = history()
    record_all(db, sessions)
    s = status(db, BASIS, STUDENTS, "bob", "students", NOW)
    chart = spending_over_time(db, BASIS, s, NOW)
    assert chart["days"][0] == "2026-11-01" and chart["days"][-1] == "2026-11-21" and len(chart["days"]) == 21
    assert chart["spent"][-1] == pytest.approx(s.used)
    assert chart["spent"] == sorted(chart["spent"])  # cumulative
    # Nov 2: 6 h at 0.56; nothing more until Nov 10's 8 h at 0.545
    assert chart["spent"][1] == pytest.approx(6 * 0.56) and chart["spent"][8] == pytest.approx(6 * 0.56)
    assert chart["spent"][9] == pytest.approx(6 * 0.56 + 8 * 0.545)
    assert chart["limit"] == 9.0
    elapsed = (NOW - MONTH_START) / (30 * DAY_MS)  # of November's 30 days
    assert chart["forecast"] == {"days": ["2026-11-21", "2026-11-30"], "spent": [pytest.approx(s.used, abs=1e-5),
                                 pytest.approx(s.used / elapsed, abs=1e-5)]}  # fmt: skip


def test_no_month_end_forecast_from_the_months_first_days(db):
    """A GPU evening on the 1st is not the month's rate: until 3 days have passed the chart
    draws no forecast and its caption says it is too early; then the forecast is the
    spending so far carried on in a straight line, every amount with its currency."""
    from twoi2c_hub.accounting.budgets import FORECAST_MIN_DAYS, spending_caption, spending_over_time

    sessions = [gpu_session("bob", MONTH_START + 18 * HOUR_MS, 5)]  # Nov 1, 18:00-23:00
    record_all(db, sessions)
    for now in (MONTH_START + DAY_MS, MONTH_START + 2 * DAY_MS + 12 * HOUR_MS, MONTH_START + 3 * DAY_MS - 1):
        s = status(db, BASIS, STUDENTS, "bob", "students", now)
        assert s.used == pytest.approx(5 * 0.56)  # October's prices until Nov 3
        assert spending_over_time(db, BASIS, s, now)["forecast"] is None
        assert spending_caption(s, now, "USD") == (
            "spent 2.80 USD of 9.00 USD this month; too early to forecast the month's end: forecasts start once "
            f"its first {FORECAST_MIN_DAYS} days have passed"
        )
    now = MONTH_START + 3 * DAY_MS  # Nov 4, 00:00: 2.80 over 3 days is 28.00 over November's 30
    s = status(db, BASIS, STUDENTS, "bob", "students", now)
    assert spending_over_time(db, BASIS, s, now)["forecast"]["spent"][1] == pytest.approx(28.0)
    assert spending_caption(s, now, "USD") == (
        "spent 2.80 USD of 9.00 USD this month; a rough forecast from the first 3 of the month's 30 days: "
        "28.00 USD by its end at this rate"
    )


def test_the_forecast_says_how_many_days_it_is_drawn_from(db):
    from twoi2c_hub.accounting.budgets import spending_caption

    sessions = history()
    record_all(db, sessions)
    s = status(db, BASIS, STUDENTS, "bob", "students", NOW)
    so_far = bobs_month(sessions)  # from the sessions and the price tables, here
    at_end = so_far / ((NOW - MONTH_START) / DAY_MS) * 30
    assert spending_caption(s, NOW, "USD") == (
        f"spent {so_far:.2f} USD of 9.00 USD this month; forecast from the first 20 of the month's 30 days: "
        f"{at_end:.2f} USD by its end at this rate"
    )
    # a rolling budget has no month's end to forecast; a budget in hours says hours
    rolling = Budget("gpu-fortnight", "user", ("bob",), limit=5.0, unit="gpu_hours", rolling_days=14)
    s = status(db, BASIS, rolling, "bob", None, NOW)
    assert spending_caption(s, NOW, "USD") == "spent 8.0 GPU-hours of 5.0 GPU-hours in the last 14 days"
