"""Statements and group leads on a real hub with the real cost service: the statements'
index and month picker, a month's lines per person, group and resource (each figure
worked out here from the recorded sessions and the demo's prices), CSV of the lines, and
who reads what: a community admin everyone's, a group lead (named, or through a group of
leads) their group's and 403 for another, a student none. Walked in Chromium with axe,
light and dark, desktop and phone."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
import requests
import yaml
from axe_playwright_python.sync_playwright import Axe
from browsing import PHONE, log_in, screenshot
from past_spending import past_session
from playwright.sync_api import expect

from twoi2c_hub.accounting.models import HOUR_MS
from twoi2c_hub.paths import demo_config

pytestmark = pytest.mark.hub

AXE = Axe()
CPU_CORE_HOUR, MEMORY_GIB_HOUR = 0.031611, 0.004237  # the demo's prices (checked below)
# last month, mid-month: (who, groups, hours, cores, memory GiB); ben is in two groups
LAST_MONTH = [
    ("alice", ["researchers"], 3.0, 2.0, 4.0),
    ("bob", ["students"], 2.0, 1.0, 2.0),
    ("ben", ["students", "researchers"], 4.0, 2.0, 8.0),
]


def month_of(moment: datetime) -> str:
    return f"{moment:%Y-%m}"


@pytest.fixture(scope="module")
def hub(hub_factory, tmp_path_factory):
    work = tmp_path_factory.mktemp("statements")
    config = demo_config()
    config["culling"] = {"enabled": False}
    config["usage"] = {"reconcile_interval": 1.0, "database_url": f"sqlite:///{work / 'usage.sqlite'}"}
    config["cost"] = {"rollup_interval": 1.0}
    config["auth"]["users"].update(
        {
            "carol": {"groups": ["community-admins"]},
            "lena": {"groups": ["teachers"]},  # leads the students, by name
            "ross": {"groups": ["lab-leads"]},  # leads the researchers, as a member of lab-leads
            "ferris": {"groups": []},  # holds only what a fleet's token holds of the cost service
        }
    )
    config["roles"] = [
        {
            "name": "fleet-like",
            "scopes": ["custom:cost:statements", "access:services!service=cost"],
            "users": ["ferris"],
        }
    ]
    config["community_admin_groups"] = ["community-admins"]
    config["group_leads"] = {"students": ["lena"], "researchers": ["group:lab-leads"]}
    config["budgets"] = {
        "budgets": [
            {"name": "students-shared", "applies_to": "group", "names": ["students"], "limit": 50, "per_person": False},
            {"name": "students-each", "applies_to": "group", "names": ["students"], "limit": 5},
        ]
    }
    prices = config["pricing"]["prices"][0]
    assert (prices["cpu_core_hour"], prices["memory_gib_hour"]) == (CPU_CORE_HOUR, MEMORY_GIB_HOUR)
    path = work / "community.yaml"
    path.write_text(yaml.safe_dump(config))
    client = hub_factory(path, "statements-hub")
    database = config["usage"]["database_url"]
    now = datetime.now(UTC)
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    middle = (first - timedelta(days=1)).replace(day=14, hour=10)
    client.last_month, client.this_month = month_of(middle), month_of(now)
    client.last_day = (first - timedelta(days=1)).date().isoformat()
    for i, (who, groups, hours, cores, memory) in enumerate(LAST_MONTH):
        start_ms = int(middle.timestamp() * 1000) + i * 5 * HOUR_MS
        past_session(database, who, start_ms, hours, groups, cpus=cores, memory_gib=memory)
    # this month: bob, a short while ago (within the month even on its first hour)
    start = max(now - timedelta(minutes=40), first)
    client.bob_hours = (now - start).total_seconds() / 3600 / 2
    past_session(database, "bob", int(start.timestamp() * 1000), client.bob_hours, ["students"])
    people = ("carol", "lena", "ross", "bob", "admin", "ferris")
    for name in people:
        client.login(name)  # the demo authenticator gives groups at login
    client.tokens = {name: client.user_token(name) for name in people}
    client.wait_for(lambda: get(client, "/health").status_code == 200, what="the cost service")
    return client


def get(hub, path, token=None, **params) -> requests.Response:
    headers = {"Authorization": f"token {token}"} if token else {}
    url = f"{hub.url}/services/cost" + (path if path.startswith("/") else f"/api/v1/{path}")
    return requests.get(url, params=params, headers=headers, timeout=30)


def cost(hours, cores, memory) -> tuple[float, float]:
    return hours * cores * CPU_CORE_HOUR, hours * memory * MEMORY_GIB_HOUR


def worked_out(group=None) -> dict[str, list[float]]:
    """Last month's cost per person (cpu, ram), or as counted for `group`: the demo's
    'split' rule shares a session equally among its person's groups."""
    people: dict[str, list[float]] = {}
    for who, groups, hours, cores, memory in LAST_MONTH:
        share = 1.0 if group is None else (1 / len(groups) if group in groups else 0.0)
        if share:
            cpu, ram = cost(hours, cores, memory)
            line = people.setdefault(who, [0.0, 0.0])
            line[0] += cpu * share
            line[1] += ram * share
    return people


def group_total(group) -> list[float]:
    people = worked_out(group).values()
    return [sum(v[0] for v in people), sum(v[1] for v in people)]


def assert_lines(lines, wanted):
    assert {r["name"]: [r["cpu_cost"], r["ram_cost"]] for r in lines} == {
        name: pytest.approx(values, rel=1e-6) for name, values in wanted.items()
    }
    for r in lines:
        assert r["gpu_cost"] == 0 and r["pv_cost"] == 0
        assert r["total_cost"] == pytest.approx(r["cpu_cost"] + r["ram_cost"])


def test_a_community_admin_reads_last_months_statement_line_by_line(hub):
    carol = hub.tokens["carol"]
    answer = get(hub, f"statements/{hub.last_month}", carol)
    assert answer.status_code == 200, answer.text
    s = answer.json()["data"]
    assert s["complete"] is True and s["period_start"] == f"{hub.last_month}-01"
    assert s["period_end"].startswith(hub.last_month) and s["period_text"].startswith("1–")
    lines = s["lines"]
    assert_lines(lines["person"], worked_out())
    assert_lines(lines["group"], {g: group_total(g) for g in ("students", "researchers")})
    cpu = sum(v[0] for v in worked_out().values())
    ram = sum(v[1] for v in worked_out().values())
    assert {r["name"]: r["cost"] for r in lines["resource"]} == pytest.approx(
        {"CPU": cpu, "Memory": ram, "GPU": 0.0, "Home storage": 0.0}
    )
    for kind in ("person", "group"):
        assert lines["totals"][kind]["total_cost"] == pytest.approx(cpu + ram)
    assert lines["totals"]["resource"] == pytest.approx(cpu + ram)
    assert s["attributed"] == pytest.approx(cpu + ram) and s["total"] == pytest.approx(s["cloud_cost"] + s["fee"])

    # CSV of each kind of line: the same figures
    for kind, wanted in (("person", worked_out()), ("resource", None)):
        text = get(hub, f"statements/{hub.last_month}", carol, format="csv", lines=kind).text
        rows = list(csv.DictReader(io.StringIO(text)))
        if kind == "person":
            assert {r["name"]: float(r["total_cost"]) for r in rows} == pytest.approx(
                {name: sum(v) for name, v in wanted.items()}
            )
        else:
            assert [r["name"] for r in rows] == ["CPU", "Memory", "GPU", "Home storage"]
            assert float(rows[0]["cost"]) == pytest.approx(cpu)
    assert get(hub, f"statements/{hub.last_month}", carol, format="csv", lines="x").json()["parameter"] == "lines"

    assert "bill" in get(hub, f"statements/{hub.last_month}", carol, group="").json()["data"]  # "": everyone's

    # this month so far: clearly not over, to today
    current = get(hub, f"statements/{hub.this_month}", carol).json()["data"]
    assert current["complete"] is False and current["period_end"] == datetime.now(UTC).date().isoformat()
    assert "so far" in current["period_text"]
    assert [r["name"] for r in current["lines"]["person"]] == ["bob"]
    # the months to choose from, newest first; a month not begun is refused in words
    index = get(hub, "statements", carol).json()["data"]
    assert index["months"][:2] == [hub.this_month, hub.last_month] and index["everyone"] is True
    future = get(hub, "statements/2199-01", carol)
    assert future.status_code == 400 and "has not begun" in future.json()["message"]


def test_a_group_lead_reads_their_groups_statement_and_figures_and_no_other(hub):
    for lead, group, other in (("lena", "students", "researchers"), ("ross", "researchers", "students")):
        token = hub.tokens[lead]
        answer = get(hub, f"statements/{hub.last_month}", token, group=group)
        assert answer.status_code == 200, answer.text
        s = answer.json()["data"]
        wanted = worked_out(group)
        assert_lines(s["lines"]["person"], wanted)  # ben's half, as the split rule counts him
        assert s["total"] == pytest.approx(sum(sum(v) for v in wanted.values()))
        assert s["lines"]["totals"]["resource"] == pytest.approx(s["total"])
        assert "bill" not in s and "fee" not in s
        refused = get(hub, f"statements/{hub.last_month}", token, group=other)
        assert refused.status_code == 403
        assert refused.json()["message"] == f"You lead {group}: you may not read the statements of {other}."
        everyone = get(hub, f"statements/{hub.last_month}", token)
        assert everyone.status_code == 403 and f"?group={group}" in everyone.json()["message"]
        figures = get(hub, f"groups/{group}", token, window="lastmonth")
        assert figures.status_code == 200, figures.text
        people = figures.json()["data"]["lines"]["person"]
        assert {r["name"]: r["total_cost"] for r in people} == pytest.approx(
            {name: sum(v) for name, v in wanted.items()}
        )
        hours = {who: h for who, groups, h, *_ in LAST_MONTH if group in groups}
        assert {r["name"]: r["server_hours"] for r in people} == pytest.approx(hours)  # hours in full
        assert get(hub, f"groups/{other}", token, window="lastmonth").status_code == 403
        # the group's budgets: this month's spending, bob's one session (1 core, 2 GiB)
        budgets = {(b["budget"], b["subject"]): b for b in figures.json()["data"]["budgets"]}
        if group == "students":
            bobs = sum(cost(hub.bob_hours, 1.0, 2.0))
            assert budgets[("students-shared", "students")]["used"] == pytest.approx(bobs, rel=1e-4, abs=1e-6)
            assert budgets[("students-each", "bob")]["used"] == pytest.approx(bobs, rel=1e-4, abs=1e-6)
            assert budgets[("students-each", "bob")]["limit"] == 5
            assert {subject for name, subject in budgets if name == "students-each"} <= {"bob", "ben"}
        else:
            assert budgets == {}
        assert get(hub, "statements", token).json()["data"] == {
            "months": [hub.this_month, hub.last_month], "everyone": False, "groups": [group]
        }  # fmt: skip
        # and nothing of everyone's: the community's costs stay the admins'
        assert get(hub, "cost", token, user="bob" if lead != "bob" else "alice").status_code == 403


def test_a_student_reads_no_statement_and_no_groups_figures(hub):
    bob = hub.tokens["bob"]
    for path, params in (
        (f"statements/{hub.last_month}", {}),
        (f"statements/{hub.last_month}", {"group": "students"}),
        ("statements", {}),
        ("groups/students", {}),
    ):
        answer = get(hub, path, bob, **params)
        assert answer.status_code == 403, path
        assert answer.json()["message"].startswith(("Statements are for", "A group's figures are for")), path
    session = hub.login("bob")
    page = session.get(f"{hub.url}/services/cost/statements/", timeout=30)
    assert page.status_code == 403 and "group leads" in page.text


def audit(page, name):
    results = AXE.run(page)
    bad = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, "\n".join(f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:5]}"
                              for v in bad)  # fmt: skip
    screenshot(page, name)


def every_way(browser, hub, username, walk):
    """`walk(page, name_suffix)` logged in as `username`, light and dark, desktop and phone."""
    for scheme in ("light", "dark"):
        for device in ("desktop", "phone"):
            viewport = PHONE if device == "phone" else {"width": 1280, "height": 900}
            context = browser.new_context(viewport=viewport, color_scheme=scheme)
            page = context.new_page()
            try:
                log_in(page, hub.url, username, hub.password)
                walk(page, f"{scheme}-{device}")
                if device == "phone":
                    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
            finally:
                context.close()


def test_a_community_admin_finds_a_statement_from_the_cost_page_and_picks_a_month(browser, hub):
    def walk(page, way):
        page.goto(f"{hub.url}/services/cost/admin")
        page.get_by_role("link", name="Statements").first.click()
        expect(page.locator("h1")).to_have_text("Statements")
        expect(page.locator("#statement-months li").first).to_contain_text(f"{datetime.now(UTC):%B %Y} (so far)")
        audit(page, f"cost-statements-index-{way}")
        page.fill("#statement-month", hub.last_month)
        page.click("#statement-picker button[type=submit]")
        # the month and the period's days: <time>s, written in the reader's locale
        expect(page.locator("h1")).to_contain_text("Demo Community Hub: statement for ")
        expect(page.locator("h1 time")).to_have_attribute("datetime", hub.last_month)
        expect(page.locator("#statement-period")).to_contain_text("Period: ")
        expect(page.locator("#statement-period time").first).to_have_attribute("datetime", f"{hub.last_month}-01")
        expect(page.locator("#statement-people tbody tr")).to_have_count(3)
        expect(page.locator("#statement-resources tfoot")).to_contain_text("Total")
        audit(page, f"cost-statement-{way}")
        page.goto(f"{hub.url}/services/cost/statements/{hub.this_month}")
        expect(page.locator("#statement-period")).to_contain_text("so far, to")
        expect(page.locator("#statement-period .badge")).to_have_text("Month not over")

    every_way(browser, hub, "carol", walk)


def test_a_group_lead_reads_their_groups_page_and_statement(browser, hub):
    def walk(page, way):
        page.goto(f"{hub.url}/services/cost/")  # their own cost page names the group they lead
        led = page.locator("#cost-led-groups")
        expect(led.get_by_role("link", name="students")).to_have_attribute("href", "/services/cost/groups/students")
        led.get_by_role("link", name="its statements").click()
        expect(page.locator("#statement-group")).to_have_value("students")
        page.fill("#statement-month", hub.last_month)
        page.click("#statement-picker button[type=submit]")
        expect(page.locator("h1")).to_contain_text("Demo Community Hub: statement of students for ")
        expect(page.locator("h1 time")).to_have_attribute("datetime", hub.last_month)
        expect(page.locator("#statement-people tbody tr")).to_have_count(2)  # bob, and ben's half
        expect(page.locator("#statement-groups")).to_have_count(0)
        audit(page, f"cost-group-statement-{way}")
        page.goto(f"{hub.url}/services/cost/groups/students?start={hub.last_month}-01&end={hub.last_day}")
        expect(page.locator("#group-people tbody tr")).to_have_count(2)
        expect(page.locator("#group-total")).to_contain_text("Total")
        expect(page.locator(".twoi2c-budget-status").first).to_contain_text("students-")
        audit(page, f"cost-group-{way}")

    every_way(browser, hub, "lena", walk)


def test_a_fleets_token_reads_the_statement_without_a_persons_name(hub):
    token = hub.tokens["ferris"]
    s = get(hub, f"statements/{hub.last_month}", token).json()["data"]
    assert "person" not in s["lines"] and "person" not in s["lines"]["totals"]
    assert [r["name"] for r in s["lines"]["group"]] == ["researchers", "students"]
    assert s["attributed"] == pytest.approx(sum(sum(v) for v in worked_out().values()))
    refused = get(hub, f"statements/{hub.last_month}", token, format="csv", lines="person")
    assert (
        refused.status_code == 400
        and refused.json()["message"] == "lines: this statement has group and resource lines for you"
    )
    assert "alice" not in get(hub, f"statements/{hub.last_month}", token).text


def test_a_group_lead_reads_their_groups_sessions_in_the_usage_service_and_no_other(hub):
    sessions = f"{hub.url}/services/usage/api/v1/sessions"

    def read(who, group):
        answer = requests.get(sessions, params={"group": group}, headers={"Authorization": f"token {hub.tokens[who]}"},
                              timeout=30)  # fmt: skip
        assert answer.status_code == 200, answer.text
        return answer.json()["data"]

    students = {who for who, groups, *_ in LAST_MONTH if "students" in groups} | {"bob"}
    rows = read("lena", "students")
    assert {r["user"] for r in rows} == students and all("students" in r["groups"] for r in rows)
    # another group: only what is her own there (nothing); a student: only his own
    assert read("lena", "researchers") == []
    assert {r["user"] for r in read("bob", "students")} == {"bob"}
    assert {r["user"] for r in read("ross", "researchers")} == {
        who for who, groups, *_ in LAST_MONTH if "researchers" in groups
    }
