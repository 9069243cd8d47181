"""Budgets end to end: a real hub, real servers, the real usage and cost services.

A students group has a small budget (10 USD over a rolling week: warn at 80 %, restrict
at 90 %, deny at 100 %). Bob's earlier spending is written into the accounting database
as sessions (the spending of a real week would take a week), then bob meets each state
on the spawn page and through the REST API; an admin's top-up lets him start again; and
with the cost service frozen the configured mode applies and is counted."""

import json
import os
import re
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import yaml
from bs4 import BeautifulSoup
from past_spending import CPU_CORE_HOUR, spend

from twoi2c_hub.localhub import tagged_processes
from twoi2c_hub.paths import demo_config

pytestmark = pytest.mark.hub


def watched_config(work: Path) -> dict:
    """The demo community without culling, its services looking at the hub every second."""
    config = demo_config()
    config["culling"] = {"enabled": False}
    config["usage"] = {"reconcile_interval": 1.0, "database_url": f"sqlite:///{work / 'usage.sqlite'}"}
    config["cost"] = {"rollup_interval": 1.0}
    return config


@pytest.fixture(scope="module")
def hub(hub_factory, tmp_path_factory):
    work = tmp_path_factory.mktemp("budget-config")
    config = watched_config(work)
    config["profiles"][1].pop("allowed_groups")  # the GPU profile is offered to students here
    config["budgets"] = {
        "contact": "Ask the course staff (staff@example.org) for more.",
        "budgets": [
            {
                "name": "students-weekly",
                "applies_to": "group",
                "names": ["students"],
                "limit": 10,
                "period": "7d",
                "thresholds": [
                    {"at": 80, "action": "warn"},
                    {"at": 90, "action": "restrict"},
                    {"at": 100, "action": "deny"},
                ],
            },
            {  # dave's servers stop 3 s after his budget is spent
                "name": "dave-stop",
                "applies_to": "user",
                "names": ["dave"],
                "limit": 1,
                "period": "7d",
                "thresholds": [{"at": 100, "action": "stop", "grace_minutes": 0.05}],
            },
        ],
    }
    config["auth"]["users"]["dave"] = {"groups": ["workshop"]}
    config["auth"]["users"]["erin"] = {"groups": ["students"]}  # each test its own student
    path = work / "community.yaml"
    path.write_text(yaml.safe_dump(config))
    # the spawners' check URL and token, for a test that asks as the spawners ask
    spawner = work / "spawner-check.json"
    extra = f"""
import json
with open({str(spawner)!r}, "w") as out:
    json.dump({{"url": c.ProfileLocalSpawner.budget_check_url, "token": c.ProfileLocalSpawner.budget_check_token}}, out)
# the GPU profile stands for an expensive one here: this machine's servers may start it
c.ProfileLocalSpawner.gives_gpus = True
"""
    client = hub_factory(path, "budget-hub", extra_config=extra)
    client.spawner_check = json.loads(spawner.read_text())
    client.spawner_check["url"] = client.spawner_check["url"].replace("{base_url}", "/")  # the hub's
    client.database_url = config["usage"]["database_url"]
    client.wait_for(lambda: requests.get(f"{client.url}/services/cost/health", timeout=10).ok, what="cost service")
    return client


def spawn_page(session, hub) -> BeautifulSoup:
    response = session.get(f"{hub.url}/hub/spawn", timeout=30)
    assert response.status_code == 200, response.text
    return BeautifulSoup(response.content, "html.parser")


def budget_notice(page) -> str:
    notice = page.select_one(".twoi2c-budget")
    return notice.get_text(" ", strip=True) if notice else ""


def test_a_student_meets_warn_restrict_deny_and_a_top_up(hub):
    bob = hub.login("bob")
    token = hub.user_token("bob")
    admin_token = hub.user_token("admin")

    spend(hub, "bob", 8.2)  # 82 %: warned
    page = spawn_page(bob, hub)
    assert re.search(r"students-weekly: 8\.2\d USD of 10\.00 USD used \(82 %\) in the last 7 days", budget_notice(page))
    assert "Left: 1.7" in budget_notice(page) or "Left: 1.8" in budget_notice(page)
    assert "Ask the course staff" in budget_notice(page)
    # prices beside the choices
    gpu_price = page.select_one("label[for=profile-gpu] ~ .twoi2c-price").get_text()
    assert gpu_price.endswith("USD an hour")
    # the GPU profile: 3.5 cores, 14 GiB and a T4 at the demo's prices; 10 - 8.2 USD left
    price = 3.5 * CPU_CORE_HOUR + 14 * 0.004237 + 0.35
    assert gpu_price == f"{price:.2f} USD an hour"
    buys = page.select_one("label[for=profile-gpu] ~ .twoi2c-hours-left").get_text()
    assert buys == f"your budget left buys about {(10 - 8.2) / price:.1f} hours"

    spend(hub, "bob", 1.4)  # 96 %: restricted; the GPU (about 0.52 USD an hour) costs more than is left
    page = spawn_page(bob, hub)
    small = page.select_one("input[name=profile-option-cpu--resources][value=mem_6_9_gib]")
    assert small is not None and not small.has_attr("disabled")  # about 0.07 USD an hour
    gpu = page.select_one("input[name=profile][value=gpu]")
    assert gpu.has_attr("disabled")
    reason = page.select_one("[data-profile=gpu] .twoi2c-refused").get_text(" ", strip=True)
    assert re.fullmatch(r"Not available: 0\.\d\d USD an hour: more than the 0\.\d\d USD left of your budget\.", reason)
    refused = hub.api("POST", "/users/bob/server", token=token, json={"user_options": {"profile": "gpu"}})
    assert refused.status_code == 403, refused.text
    assert "more than is left of your budget" in refused.json()["message"]
    assert hub.server("bob") is None

    spend(hub, "bob", 0.5)  # 101 %: denied, through the form and the REST API, with the numbers
    page = spawn_page(bob, hub)
    assert "Your budget is used up" in budget_notice(page)
    form = bob.post(
        f"{hub.url}/hub/spawn",
        data={"profile": "cpu", "_xsrf": bob.cookies.get("_xsrf", path="/hub/")},
        timeout=60,
    )
    assert form.status_code == 403
    refusal = BeautifulSoup(form.content, "html.parser")
    message = refusal.get_text(" ", strip=True)
    assert re.search(r"10\.1\d USD of 10\.00 USD used \(101 %\) in the last 7 days; you can start again on \d", message)
    # the day, for the reader's locale: a <time> with the ISO day (the API's words keep it)
    day = refusal.select_one(".twoi2c-refusal time.twoi2c-date")["datetime"]
    assert re.fullmatch(r"20\d\d-\d\d-\d\d", day)
    assert budget_notice(refusal) == ""  # the form under the refusal does not say it again
    api = hub.api("POST", "/users/bob/server", token=token, json={"user_options": {"profile": "cpu"}})
    assert api.status_code == 403 and "Your budget is used up" in api.json()["message"]
    assert f"you can start again on {day}" in api.json()["message"]  # ISO, for machines
    assert hub.server("bob") is None
    # a refusal through the REST API changes nothing on the page opened next
    assert "Your budget is used up" in budget_notice(spawn_page(bob, hub))

    # an admin's top-up, kept in the ledger with who and why, lets bob start again
    topup = requests.post(
        f"{hub.url}/services/cost/api/v1/ledger",
        data={"budget": "students-weekly", "subject": "bob", "kind": "topup", "amount": "5", "reason": "lab 3"},
        headers={"Authorization": f"token {admin_token}"},
        timeout=30,
    )
    assert topup.status_code == 201, topup.text
    ledger = requests.get(
        f"{hub.url}/services/cost/api/v1/ledger", headers={"Authorization": f"token {token}"}, timeout=30
    ).json()["data"]
    assert [(e["by"], e["amount"], e["reason"]) for e in ledger] == [("admin", 5.0, "lab 3")]
    started = hub.api("POST", "/users/bob/server", token=token, json={"user_options": {"profile": "cpu"}})
    assert started.status_code in (201, 202), started.text
    hub.wait_for(lambda: (hub.server("bob") or {}).get("ready"), timeout=90, what="bob's server")
    hub.stop_server("bob")
    # bob may not give himself more
    assert (
        requests.post(
            f"{hub.url}/services/cost/api/v1/ledger",
            data={"budget": "students-weekly", "subject": "bob", "kind": "topup", "amount": "50", "reason": "me"},
            headers={"Authorization": f"token {token}"},
            timeout=30,
        ).status_code
        == 403
    )


def test_with_the_cost_service_unreachable_the_configured_mode_applies_and_is_counted(hub):
    token, admin_token = hub.user_token("alice"), hub.user_token("admin")
    (pid,) = [p for p in tagged_processes(hub.hub.tag) if b"--checks-only" in Path(f"/proc/{p}/cmdline").read_bytes()]

    def unreadable_count() -> float:
        metrics = requests.get(f"{hub.url}/hub/metrics", headers={"Authorization": f"token {admin_token}"}, timeout=30)
        assert metrics.status_code == 200, metrics.text
        found = re.search(r'^twoi2c_budget_unreadable_total\{mode="allow"\} (\S+)$', metrics.text, re.M)
        return float(found.group(1)) if found else 0.0

    before = unreadable_count()
    os.kill(pid, signal.SIGSTOP)  # the service answers nothing: every check times out
    try:
        response = hub.api("POST", "/users/alice/server", token=token, json={"user_options": {"profile": "cpu"}})
        assert response.status_code in (201, 202), response.text  # when_unreadable: allow
    finally:
        os.kill(pid, signal.SIGCONT)
    hub.wait_for(lambda: (hub.server("alice") or {}).get("ready"), timeout=90, what="alice's server")
    hub.stop_server("alice")
    assert unreadable_count() == before + 1


def test_past_a_stop_threshold_running_servers_stop_after_the_grace_period(hub):
    token = hub.user_token("dave")
    hub.login("dave")
    began = datetime.now(UTC) - timedelta(seconds=5)
    started = hub.api("POST", "/users/dave/server", token=token, json={"user_options": {"profile": "cpu"}})
    assert started.status_code in (201, 202), started.text
    hub.wait_for(lambda: (hub.server("dave") or {}).get("ready"), timeout=90, what="dave's server")
    spend(hub, "dave", 1.2, groups=("workshop",))  # 120 %: past the stop threshold

    def budgets():
        response = requests.get(
            f"{hub.url}/services/cost/api/v1/budgets", headers={"Authorization": f"token {token}"}, timeout=30
        )
        assert response.status_code == 200, response.text
        return response.json()["data"]

    state = hub.wait_for(lambda: (lambda b: b if b["action"] == "stop" else None)(budgets()), what="the stop")
    assert state["stop_at"] and "dave-stop: 1.2" in state["budgets"][0]["text"]
    hub.wait_for(lambda: hub.server("dave") is None, timeout=60, what="dave's server to be stopped")

    def stop_reason():
        response = requests.get(
            f"{hub.url}/services/usage/api/v1/sessions",
            params={"user": "dave"},
            headers={"Authorization": f"token {token}"},
            timeout=30,
        )
        mine = [
            s for s in response.json()["data"] if datetime.fromisoformat(s["started"].replace("Z", "+00:00")) > began
        ]
        return [s["stop_reason"] for s in mine if s["stopped"]]  # not the spending written above

    assert hub.wait_for(stop_reason, what="the stop to be recorded") == ["budget"]
    # and no new server while past the limit
    again = hub.api("POST", "/users/dave/server", token=token, json={"user_options": {"profile": "cpu"}})
    assert again.status_code == 403 and "Your budget is used up" in again.json()["message"]


def test_cost_pages_show_budgets_and_the_admin_gives_a_top_up_through_the_form(hub):
    spend(hub, "erin", 0.3)
    erin = hub.login("erin")
    page = BeautifulSoup(erin.get(f"{hub.url}/services/cost/", timeout=30).content, "html.parser")
    bar = page.select_one(".twoi2c-budget-status[data-budget=students-weekly]")
    assert bar is not None and "students-weekly" in bar.get_text()
    # the profile's name, not its slug
    assert page.select_one("#cost-totals tbody tr td").get_text() == "Shared CPU server"
    assert erin.get(f"{hub.url}/services/cost/admin", timeout=30).status_code == 403

    alice = hub.login("alice")  # researchers: the community admins
    admin_page = alice.get(f"{hub.url}/services/cost/admin?aggregate=user", timeout=30)
    assert admin_page.status_code == 200
    soup = BeautifulSoup(admin_page.content, "html.parser")
    names = [row.select_one("td").get_text() for row in soup.select("#cost-totals tbody tr")]
    assert "erin" in names
    form = soup.select_one("#ledger-form")
    fields = {i["name"]: i.get("value", "") for i in form.select("input[type=hidden]")}
    fields.update(budget="students-weekly", subject="erin", kind="topup", amount="2.5", reason="re-run lab 2")
    response = alice.post(f"{hub.url}/services/cost/admin/ledger", data=fields, timeout=30)
    assert response.status_code == 200 and "re-run lab 2" in response.text  # back on the page, in the ledger
    # without the form's XSRF token nothing is given
    forged = {k: v for k, v in fields.items() if k != "_xsrf"}
    assert alice.post(f"{hub.url}/services/cost/admin/ledger", data=forged, timeout=30).status_code == 403


def test_a_class_of_spawn_time_checks_at_once_are_all_answered(hub):
    """Forty students starting together: the spawners' checks come from one place (the hub)
    and are not held to one person's limit on reports (which test_abuse.py holds people to)."""
    check = hub.spawner_check

    def ask(i: int) -> requests.Response:
        body = {"username": f"student{i}", "groups": ["students"], "server": {"cpu_guarantee": 1.0}}
        return requests.post(check["url"], json=body, headers={"Authorization": f"token {check['token']}"}, timeout=60)

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(ask, range(40)))
    assert [a.status_code for a in answers] == [200] * 40, [a.text for a in answers if a.status_code != 200][:2]
    assert all(a.json()["data"]["allowed"] for a in answers)


def test_the_checks_database_work_runs_at_the_hubs_priority_and_reports_below_it(hub):
    """A spawn waits for the check: its database work is not SCHED_IDLE, as reports' is."""
    check = hub.spawner_check
    body = {"username": "alice", "groups": ["students"], "server": None}
    headers = {"Authorization": f"token {check['token']}"}
    assert requests.post(check["url"], json=body, headers=headers, timeout=60).status_code == 200
    token = hub.user_token("alice")
    report = requests.get(f"{hub.url}/services/cost/api/v1/cost?window=7d", headers={"Authorization": f"token {token}"},
                          timeout=60)  # fmt: skip
    assert report.status_code == 200, report.text

    def policies(checks_only: bool) -> set[int]:
        (pid,) = [
            p
            for p in tagged_processes(hub.hub.tag)
            if b"twoi2c_hub.services.cost" in (cmd := Path(f"/proc/{p}/cmdline").read_bytes())
            and (b"--checks-only" in cmd) == checks_only
        ]
        return {os.sched_getscheduler(int(tid)) for tid in os.listdir(f"/proc/{pid}/task")}

    assert policies(checks_only=True) == {os.SCHED_OTHER}
    assert os.SCHED_IDLE in policies(checks_only=False)


def test_every_service_process_shares_two_malloc_arenas(hub):
    """glibc would give each allocating thread an arena of its own, each keeping what was
    freed in it; the hub starts its services with two (MALLOC_ARENA_MAX)."""
    services = [
        p for p in tagged_processes(hub.hub.tag) if b"twoi2c_hub.services." in Path(f"/proc/{p}/cmdline").read_bytes()
    ]
    assert len(services) >= 3  # usage, cost, cost-checks
    for pid in services:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert b"MALLOC_ARENA_MAX=2" in environ, Path(f"/proc/{pid}/cmdline").read_bytes()


# the hub's largest page of a list (JupyterHub's `api_page_max_limit`, 200 by default)
CROWDED_PAGE = 2


@pytest.fixture(scope="module")
def crowded_hub(hub_factory, tmp_path_factory):
    """A class of seven whose budgets say `stop`, on a hub whose lists come 2 to a page."""
    work = tmp_path_factory.mktemp("crowded-config")
    config = watched_config(work)
    config["auth"] = {"provider": "demo", "users": {f"learner-{i}": {"groups": ["class"]} for i in range(7)}}
    # no image runs the hub's Python, so every server is the tiny one configured below
    config["spawner"]["local"].update(apply_memory_limit=False, apply_cpu_limit=False, images={})
    config["budgets"] = {
        "budgets": [
            {
                "name": "class-stop",
                "applies_to": "group",
                "names": ["class"],
                "limit": 1,
                "period": "7d",
                "thresholds": [{"at": 100, "action": "stop", "grace_minutes": 0}],
            }
        ]
    }
    path = work / "community.yaml"
    path.write_text(yaml.safe_dump(config))
    tiny = [sys.executable, str(Path(__file__).parent.parent / "benchmarks" / "tiny_server.py")]
    extra = f"""
c.JupyterHub.api_page_max_limit = {CROWDED_PAGE}
c.ProfileLocalSpawner.cmd = {tiny!r}
"""
    client = hub_factory(path, "crowded-hub", extra_config=extra)
    client.database_url = config["usage"]["database_url"]
    client.wait_for(lambda: requests.get(f"{client.url}/services/cost/health", timeout=10).ok, what="cost service")
    return client


def test_past_a_stop_threshold_everyone_is_stopped_however_many_pages_the_hub_lists(crowded_hub):
    """The enforcer reads every page of the hub's active people: with the first page (in
    the hub's own order) within budget, the five on the pages after it are stopped."""
    hub = crowded_hub
    people = [f"learner-{i}" for i in range(7)]

    def start(name: str) -> None:
        hub.login(name)  # the hub learns their group ("class") at login
        started = hub.api("POST", f"/users/{name}/server", json={"user_options": {"profile": "cpu"}})
        assert started.status_code in (201, 202), started.text

    with ThreadPoolExecutor(len(people)) as pool:
        list(pool.map(start, people))
    for name in people:
        hub.wait_for(lambda name=name: (hub.server(name) or {}).get("ready"), timeout=90, what=f"{name}'s server")
    first_page = requests.get(
        f"{hub.url}/hub/api/users",
        params={"state": "active"},
        headers={"Authorization": f"token {hub.service_token}", "Accept": "application/jupyterhub-pagination+json"},
        timeout=30,
    ).json()
    assert first_page["_pagination"]["total"] == 7 and first_page["_pagination"]["next"]
    within = [u["name"] for u in first_page["items"]]
    over = [name for name in people if name not in within]
    assert len(within) == CROWDED_PAGE and len(over) == 5
    for name in over:
        spend(hub, name, 1.2, groups=("class",))  # 120 % of their 1 USD
    for name in over:
        hub.wait_for(lambda name=name: hub.server(name) is None, timeout=60, what=f"{name}'s server to be stopped")
    assert all((hub.server(name) or {}).get("ready") for name in within)
