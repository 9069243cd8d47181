"""A month's statement, line by line, on SQLite and PostgreSQL: per person, per group and
per resource, and one group's statement for its lead, each figure worked out here from
the sessions and the price tables (cost_figures.expected), apart from the code under
test; the period it covers (the month so far, for this month); the months to choose from."""

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from cost_figures import NOVEMBER, NOW, OCTOBER, PRICING, expected, random_sessions, record_all

from twoi2c_hub.accounting.bills import Fee, group_statement, statement
from twoi2c_hub.accounting.costs import CostBasis
from twoi2c_hub.accounting.models import DAY_MS, HOUR_MS
from twoi2c_hub.accounting.statement_lines import months_with_activity
from twoi2c_hub.accounting.storage import record_home_sizes
from twoi2c_hub.catalog import INSTANCE_TYPES, GiB

HOME_GIB_MONTH = 0.3
TABLES = (replace(OCTOBER, home_gib_month=HOME_GIB_MONTH), replace(NOVEMBER, home_gib_month=HOME_GIB_MONTH))
BASIS = CostBasis(replace(PRICING, tables=TABLES), INSTANCE_TYPES)
START = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1000)
END = int(datetime(2026, 12, 1, tzinfo=UTC).timestamp() * 1000)
LATER = END + 3 * DAY_MS  # December the 4th: November is over
HANA_GIB = 12  # hana stores files on days 2 to 6 of November and never starts a server


@pytest.fixture
def history(db):
    sessions = random_sessions()
    record_all(db, sessions)
    for day in range(2, 7):
        record_home_sizes(db, {"hana": HANA_GIB * GiB}, START + (day - 1) * DAY_MS + HOUR_MS)
    return sessions


def hana_home() -> float:
    return 5 * HANA_GIB * HOME_GIB_MONTH / 30  # five whole days of a 30-day month


def approx_lines(lines, wanted, fields=("cpu_cost", "ram_cost", "gpu_cost")):
    got = {r["name"]: [r[f] for f in fields] for r in lines if sum(r[f] for f in fields) > 1e-9}
    wanted = {name: values for name, values in wanted.items() if sum(values) > 1e-9}
    assert set(got) == set(wanted)
    for name, values in wanted.items():
        assert got[name] == pytest.approx(values, abs=1e-6), name


def test_a_months_lines_per_person_group_and_resource_add_up(db, history):
    now = NOW  # 10 November, 05:00: the month is not over
    s = statement(db, BASIS, 2026, 11, Fee(), now)
    lines = s["lines"]
    people = expected(history, START, END, "user", now=now)
    approx_lines(lines["person"], people)
    hana = next(r for r in lines["person"] if r["name"] == "hana")
    assert hana["pv_cost"] == pytest.approx(hana_home()) and hana["total_cost"] == pytest.approx(hana_home())
    assert all(r["pv_cost"] == 0 for r in lines["person"] if r["name"] != "hana")
    for r in lines["person"]:  # each line's total is its parts
        assert r["total_cost"] == pytest.approx(r["cpu_cost"] + r["ram_cost"] + r["gpu_cost"] + r["pv_cost"])

    groups = expected(history, START, END, "group", now=now)
    groups = {name or "(no group)": values for name, values in groups.items()}
    got_groups = {r["name"]: r for r in lines["group"]}
    approx_lines(lines["group"], groups)
    assert got_groups["(no group)"]["pv_cost"] == pytest.approx(hana_home())  # hana is in no group

    compute = [sum(values[i] for values in people.values()) for i in range(3)]
    resources = {r["name"]: r["cost"] for r in lines["resource"]}
    assert resources == pytest.approx(
        {"CPU": compute[0], "Memory": compute[1], "GPU": compute[2], "Home storage": hana_home()}, abs=1e-6
    )
    attributed = sum(compute) + hana_home()
    totals = lines["totals"]
    assert totals["resource"] == pytest.approx(attributed, abs=1e-6)
    assert totals["person"]["total_cost"] == pytest.approx(attributed, abs=1e-6)
    assert totals["group"]["total_cost"] == pytest.approx(attributed, abs=1e-6)  # the split rule: each once
    assert s["attributed"] == pytest.approx(attributed, abs=1e-6)
    assert totals["person"]["total_cost"] == pytest.approx(sum(r["total_cost"] for r in lines["person"]), abs=1e-12)

    assert (s["period_start"], s["period_end"], s["complete"]) == ("2026-11-01", "2026-11-10", False)
    assert s["period_text"] == "November 2026 so far, to 10 November 2026"


def test_a_finished_month_covers_all_its_days(db, history):
    s = statement(db, BASIS, 2026, 11, Fee(), LATER)
    assert (s["period_start"], s["period_end"], s["complete"]) == ("2026-11-01", "2026-11-30", True)
    assert s["period_text"] == "1–30 November 2026"
    # servers still running on 4 December count to the end of November only
    approx_lines(s["lines"]["person"], expected(history, START, END, "user", now=LATER))


def test_a_groups_statement_has_its_people_as_counted_for_the_group(db, history):
    now = LATER
    s = group_statement(db, BASIS, 2026, 11, "students", now)
    wanted = {}
    for name in {start.username for start, _ in history}:
        mine = [(start, stop) for start, stop in history if start.username == name]
        share = expected(mine, START, END, "group", now=now).get("students")
        if share:
            wanted[name] = share
    approx_lines(s["lines"]["person"], wanted)
    everyone = statement(db, BASIS, 2026, 11, Fee(), now)
    students = next(r for r in everyone["lines"]["group"] if r["name"] == "students")
    # the group's statement adds up to its line on everyone's
    assert s["total"] == pytest.approx(students["total_cost"], abs=1e-6)
    assert s["lines"]["totals"]["resource"] == pytest.approx(s["total"], abs=1e-9)
    assert {r["name"] for r in s["lines"]["person"]} <= {start.username for start, _ in history}
    assert "hana" not in {r["name"] for r in s["lines"]["person"]}
    assert s["complete"] and "bill" not in s and "fee" not in s  # nothing of the community's bill


def test_the_months_to_choose_from_are_those_with_servers_newest_first(db, history):
    running = any(stop is None for _, stop in history)
    assert running
    assert months_with_activity(db, LATER) == ["2026-12", "2026-11", "2026-10"]
    assert months_with_activity(db, NOW) == ["2026-11", "2026-10"]
