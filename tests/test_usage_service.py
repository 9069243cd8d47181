"""The usage service with a real hub, real single-user servers and the real service:
what is recorded, who may read what, and that nothing is lost when the service is killed
or the hub restarts."""

import csv
import io
import os
import signal
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import yaml
from bs4 import BeautifulSoup
from past_spending import A_DAYS_SESSIONS, in_rollups, record_a_day

from twoi2c_hub.localhub import tagged_processes
from twoi2c_hub.paths import demo_config

pytestmark = pytest.mark.hub

HOSTILE = "=sum(1+1)<img src=x onerror=alert(1)>"
INTERVAL = 1.0


def usage_config(tmp_path) -> Path:
    config = demo_config()
    config["auth"]["users"][HOSTILE] = {"groups": ["students"]}
    config["auth"]["users"]["carol"] = {"groups": ["students"]}
    config["culling"] = {"enabled": False}
    config["usage"] = {"reconcile_interval": INTERVAL}
    path = tmp_path / "usage-community.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


FAST = "c.Spawner.poll_interval = 2\n"  # notice dead servers and services quickly


@pytest.fixture(scope="module")
def hub(hub_factory, tmp_path_factory):
    client = hub_factory(usage_config(tmp_path_factory.mktemp("usage-config")), "usage-hub", extra_config=FAST)
    client.wait_for(lambda: usage_get(client, "/health").status_code == 200, what="the usage service")
    return client


def usage_get(hub, path, token=None, **params) -> requests.Response:
    """GET api/v1/<path> of the usage service (or, with a leading /, <path> at its root)."""
    headers = {"Authorization": f"token {token}"} if token else {}
    url = f"{hub.url}/services/usage" + (path if path.startswith("/") else f"/api/v1/{path}")
    return requests.get(url, params=params, headers=headers, timeout=30)


def quoted(name):
    return urllib.parse.quote(name, safe="")


def start_server(hub, username, token, user_options):
    response = hub.api("POST", f"/users/{quoted(username)}/server", token=token, json={"user_options": user_options})
    assert response.status_code in (201, 202), response.text
    hub.wait_for(
        lambda: (hub.user_model(username)["servers"].get("") or {}).get("ready"),
        timeout=60,
        what=f"{username}'s server",
    )
    return hub.user_model(username)["servers"][""]["started"]


def stop_server(hub, username, token):
    response = hub.api("DELETE", f"/users/{quoted(username)}/server", token=token)
    assert response.status_code in (202, 204), response.text
    hub.wait_for(lambda: not hub.user_model(username)["servers"], what=f"{username}'s server to stop")


def allocations(response) -> list[dict]:
    """The allocations of an OpenCost-shaped answer: `data` is one {name: allocation} per step."""
    assert response.status_code == 200, response.text
    return [allocation for step in response.json()["data"] for allocation in step.values()]


def last_reconciled(hub) -> float:
    health = usage_get(hub, "/health")
    value = health.json().get("last_reconciled") if health.status_code == 200 else None
    return parse(value) if value else 0.0


def wait_for_reconciliations(hub, count=2):
    """Until the service has reconciled with the hub `count` times from now."""
    for _ in range(count):
        since = time.time()
        hub.wait_for(lambda since=since: last_reconciled(hub) > since, what="a reconciliation")


def sessions_of(hub, username, token):
    response = usage_get(hub, "sessions", token, user=username, limit=1000)
    assert response.status_code == 200, response.text
    return response.json()["data"]


@pytest.fixture(scope="module")
def tokens(hub):
    names = ("admin", "alice", "bob", "carol", HOSTILE)
    for name in names:
        hub.login(name)  # the demo authenticator gives groups at login
    return {name: hub.user_token(name) for name in names}


def test_a_session_is_recorded_with_profile_resources_groups_and_who_stopped_it(hub, tokens):
    started = start_server(hub, "alice", tokens["alice"], {"profile": "cpu", "resources": "mem_14_gib"})
    running = hub.wait_for(
        lambda: [s for s in sessions_of(hub, "alice", tokens["alice"]) if s["stopped"] is None],
        what="alice's running session",
    )
    (session,) = running
    assert session["profile"] == "cpu" and session["choices"] == {"resources": "mem_14_gib", "image": "scipy"}
    assert same_moment(session["started"], started)
    assert session["mem_guarantee_bytes"] == session["mem_limit_bytes"] == int(28191.2288 * 1024**2 / 2)
    assert session["cpu_guarantee"] == pytest.approx(1.872, abs=0.001)
    assert session["groups"] == ["researchers"] and session["source"] == "event"
    stop_server(hub, "alice", tokens["alice"])
    (session,) = hub.wait_for(
        lambda: [s for s in sessions_of(hub, "alice", tokens["alice"]) if s["stopped"]], what="alice's stop"
    )
    assert session["stop_reason"] == "user"


def test_an_admin_stop_and_a_crash_are_told_apart(hub, tokens):
    earlier = len(sessions_of(hub, "carol", tokens["admin"]))
    start_server(hub, "carol", tokens["carol"], {})
    stop_server(hub, "carol", tokens["admin"])
    start_server(hub, "carol", tokens["carol"], {})
    pid = hub.api("GET", "/users/carol").json()["servers"][""]["state"]["pid"]
    os.kill(pid, signal.SIGKILL)
    hub.wait_for(lambda: not hub.user_model("carol")["servers"], timeout=30, what="the hub to notice the crash")

    def both_closed():
        new = sessions_of(hub, "carol", tokens["admin"])[earlier:]
        return [s["stop_reason"] for s in new] if len(new) == 2 and all(s["stopped"] for s in new) else None

    reasons = hub.wait_for(both_closed, what="both of carol's new sessions to close")
    assert reasons == ["admin", "crash"]


def test_a_person_reads_only_their_own_usage(hub, tokens):
    start_server(hub, "bob", tokens["bob"], {"profile": "cpu"})
    stop_server(hub, "bob", tokens["bob"])
    hub.wait_for(lambda: sessions_of(hub, "bob", tokens["bob"]), what="bob's session")
    # the API answers bob with bob's rows only, whatever he asks
    for path, params in [
        ("sessions", {}),
        ("allocation", {"aggregate": "user", "window": "1d"}),
        ("allocation", {"aggregate": "group", "window": "1d"}),
    ]:
        response = usage_get(hub, path, tokens["bob"], **params)
        assert response.status_code == 200
        rows = allocations(response) if path == "allocation" else response.json()["data"]
        assert rows and all(r.get("user", "bob") == "bob" for r in rows)
        if params.get("aggregate") == "user":
            assert [r["name"] for r in rows] == ["bob"]
    # and refuses every way of asking for someone else's
    for path, params in [("sessions", {"user": "alice"}), ("allocation", {"user": "alice"}), ("active-users", {})]:
        response = usage_get(hub, path, tokens["bob"], **params)
        assert response.status_code == 403, (path, params)
        assert response.json()["message"]
    assert usage_get(hub, "sessions").status_code == 403  # no token at all


def login(hub, username) -> requests.Session:
    session = hub.login(username)
    return session


def test_pages_user_sees_own_rows_non_admin_gets_403_on_admin_page(hub, tokens):
    for name in (HOSTILE, "bob", "carol"):
        start_server(hub, name, tokens[name], {})
        stop_server(hub, name, tokens[name])
    for name in ("alice", "bob", "carol", HOSTILE):
        hub.wait_for(
            lambda name=name: name == "alice" or any(s["stopped"] for s in sessions_of(hub, name, tokens["admin"])),
            what=f"{name}'s session",
        )
    bob = login(hub, "bob")
    page = bob.get(f"{hub.url}/services/usage/", timeout=30)
    assert page.status_code == 200
    soup = BeautifulSoup(page.content, "html.parser")
    assert soup.select_one("#usage-user h1").get_text() == "Your usage"
    assert soup.select("#usage-sessions tbody tr")  # bob's own session
    assert "alice" not in soup.get_text() and HOSTILE not in soup.get_text()
    assert bob.get(f"{hub.url}/services/usage/admin", timeout=30).status_code == 403

    admin = login(hub, "admin")
    page = admin.get(f"{hub.url}/services/usage/admin", params={"aggregate": "user"}, timeout=30)
    assert page.status_code == 200
    soup = BeautifulSoup(page.content, "html.parser")
    names = [row.select_one("td").get_text() for row in soup.select("#usage-totals tbody tr")]
    assert {"bob", "carol", HOSTILE} <= set(names)
    assert soup.find("img", src="x") is None  # the hostile name is text, not markup
    drill = admin.get(f"{hub.url}/services/usage/admin", params={"aggregate": "user", "user": "carol"}, timeout=30)
    carols = sessions_of(hub, "carol", tokens["admin"])
    assert len(BeautifulSoup(drill.content, "html.parser").select("#usage-drill-sessions tbody tr")) == len(carols)
    # the chart library is served by the service, from the installed package
    script = admin.get(f"{hub.url}/services/usage/static/plotly.min.js", timeout=30)
    assert script.status_code == 200 and len(script.content) > 1_000_000


def usage_table(page, columns):
    """The figures (data-value) of each body row of the totals table, and of its total row."""
    rows = [
        {c: float(td["data-value"]) for c, td in zip(columns, tr.select("td")[1:], strict=True)}
        for tr in page.select("#usage-totals tbody tr")
    ]
    (total,) = page.select("#usage-totals tfoot tr")
    return rows, {c: float(td["data-value"]) for c, td in zip(columns, total.select("td"), strict=True)}, total


def test_the_usage_tables_end_with_a_total_row_each_session_counted_once(hub):
    day = datetime.now(UTC).date() - timedelta(days=5)
    database_url = f"sqlite:///{hub.hub.data_dir / 'twoi2c-usage.sqlite'}"
    record_a_day(database_url, day)
    hub.wait_for(lambda: in_rollups(database_url, day, cost=False), what="the sessions in the rollups")
    # the figure asked for (server hours, by default) first, then the others
    columns = ["server_hours", "sessions", "cpu_core_hours", "memory_gib_hours", "gpu_hours"]
    # worked out here from the sessions recorded
    everyone = {
        "sessions": len(A_DAYS_SESSIONS),
        "server_hours": sum(h for *_, h, _, _ in A_DAYS_SESSIONS),
        "cpu_core_hours": sum(h * c for *_, h, c, _ in A_DAYS_SESSIONS),
        "memory_gib_hours": sum(h * g for *_, h, _, g in A_DAYS_SESSIONS),
        "gpu_hours": 0,
    }
    admin = login(hub, "admin")
    for aggregate in ("user", "profile", "group"):
        params = {"aggregate": aggregate, "start": day.isoformat(), "end": day.isoformat()}
        page = BeautifulSoup(
            admin.get(f"{hub.url}/services/usage/admin", params=params, timeout=30).content, "html.parser"
        )
        rows, total, row = usage_table(page, columns)
        assert total == {c: pytest.approx(v) for c, v in everyone.items()}
        in_rows = {c: sum(r[c] for r in rows) for c in columns}
        if aggregate == "group":  # ben (4 cores, 8 GiB, 3 hours) is in students' row and researchers'
            assert in_rows["sessions"] == everyone["sessions"] + 1
            assert in_rows["cpu_core_hours"] == pytest.approx(everyone["cpu_core_hours"] + 12)
            assert "each session once" in row.get_text()
        else:
            assert {c: pytest.approx(v) for c, v in in_rows.items()} == total
            assert row.select_one(".twoi2c-total-note") is None

    # bob's own page: his two profiles and their total
    page = BeautifulSoup(
        login(hub, "bob").get(f"{hub.url}/services/usage/", params={"start": day, "end": day}, timeout=30).content,
        "html.parser",
    )
    # a person's page: the sessions, then the hours (the one asked for first)
    rows, total, _ = usage_table(page, ["sessions", "server_hours", "cpu_core_hours", "memory_gib_hours", "gpu_hours"])
    bobs = [s for s in A_DAYS_SESSIONS if s[0] == "bob"]
    assert len(rows) == 2 and total["sessions"] == 2
    assert total["server_hours"] == pytest.approx(sum(s[3] for s in bobs))
    assert total["cpu_core_hours"] == pytest.approx(sum(s[3] * s[4] for s in bobs))
    assert {c: pytest.approx(sum(r[c] for r in rows)) for c in total} == total


def test_community_admins_read_everyone_and_csv_matches_json(hub, tokens):
    for name in ("bob", "carol", HOSTILE):
        start_server(hub, name, tokens[name], {})
        stop_server(hub, name, tokens[name])
        hub.wait_for(lambda name=name: sessions_of(hub, name, tokens["admin"]), what=f"{name}'s session")
    # alice is in researchers, the demo's community-admin group
    rows = allocations(usage_get(hub, "allocation", tokens["alice"], aggregate="user", window="1d"))
    assert {"bob", "carol", HOSTILE} <= {r["name"] for r in rows}
    response = usage_get(hub, "allocation", tokens["admin"], aggregate="user", window="1d", format="csv")
    assert response.headers["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(response.text)))
    as_json = allocations(usage_get(hub, "allocation", tokens["admin"], aggregate="user", window="1d"))
    assert len(table) == len(as_json)
    for line, row in zip(table, as_json):
        expected_name = "'" + row["name"] if row["name"].startswith("=") else row["name"]
        assert line["name"] == expected_name
        for figure in ("serverHours", "cpuCoreHours", "ramByteHours", "gpuHours"):
            assert float(line[figure]) == pytest.approx(row[figure])
        assert int(line["sessions"]) == row["sessions"]
        assert (line["window.start"], line["window.end"]) == (row["window"]["start"], row["window"]["end"])
    assert any(line["name"] == "'" + HOSTILE for line in table)  # no formula reaches a spreadsheet


@pytest.mark.parametrize(
    "params, message",
    [
        ({"window": "'; DROP TABLE sessions;--"}, "window: ''; DROP TABLE sessions;--' is not a window"),
        ({"window": "2026-01-02T00:00:00Z,2026-01-01T00:00:00Z"}, "window: its end must be after its start"),
        ({"aggregate": "user); DELETE FROM sessions"}, "aggregate: 'user); DELETE FROM sessions' is not one of"),
        ({"step": "1s"}, "step: '1s' is not one of 1h, 1d, 1w, 1mo"),
        ({"window": "365d", "step": "1h"}, "step: 1h steps over this window make more than 400"),
        ({"format": "xml"}, "format: 'xml' is not one of json, csv"),
    ],
)
def test_bad_parameters_get_a_400_that_says_which_and_why(hub, tokens, params, message):
    response = usage_get(hub, "allocation", tokens["admin"], **params)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 400 and body["message"].startswith(message)
    assert body["parameter"] == message.split(":")[0]


def test_injection_in_filters_finds_nothing_and_breaks_nothing(hub, tokens):
    start_server(hub, "bob", tokens["bob"], {})
    stop_server(hub, "bob", tokens["bob"])
    hub.wait_for(lambda: sessions_of(hub, "bob", tokens["admin"]), what="bob's session")
    for params in ({"user": "' OR '1'='1"}, {"profile": "cpu' OR 1=1 --"}, {"group": 'x"; DROP TABLE sessions'}):
        response = usage_get(hub, "sessions", tokens["admin"], **params)
        assert response.status_code == 200 and response.json()["data"] == []
    assert usage_get(hub, "sessions", tokens["admin"], limit="1 OR 1=1").status_code == 400
    assert len(usage_get(hub, "sessions", tokens["admin"], limit=1000).json()["data"]) >= 1


def test_metrics_and_health(hub, tokens):
    health = requests.get(f"{hub.url}/services/usage/health", timeout=30)
    assert health.status_code == 200 and health.json()["database"] == "ok"
    assert usage_get(hub, "/metrics", tokens["bob"]).status_code == 403
    metrics = usage_get(hub, "/metrics", tokens["admin"])
    assert metrics.status_code == 200
    for name in (
        "twoi2c_usage_running_sessions",
        "twoi2c_usage_recorded_sessions",
        "twoi2c_usage_reconcile_lag_seconds",
        "twoi2c_usage_reconcile_corrections_total",
        "twoi2c_usage_events_total",
    ):
        assert name in metrics.text


def usage_service_pid(hub) -> int:
    for pid in tagged_processes(hub.hub.tag):
        if b"twoi2c_hub.services.usage" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    raise AssertionError("the usage service is not running")


def same_moment(ours, hubs) -> bool:
    """Ours is kept to the millisecond, the hub's to the microsecond."""
    return abs(parse(ours) - parse(hubs)) < 0.001


def parse(iso) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_service_killed_mid_session_loses_nothing(hub, tokens):
    """kill -9 the service while servers start and stop; after the hub restarts it,
    every session is there once, with start and stop within the reconciliation interval."""
    before = {name: len(sessions_of(hub, name, tokens["admin"])) for name in ("bob", "carol")}
    start_server(hub, "carol", tokens["carol"], {})  # recorded by its event
    os.kill(usage_service_pid(hub), signal.SIGKILL)
    bob_started = start_server(hub, "bob", tokens["bob"], {})  # no service to tell
    stop_server(hub, "carol", tokens["carol"])  # nor this
    carol_stopped = time.time()
    # the hub restarts its service; the service reconciles
    hub.wait_for(lambda: usage_get(hub, "/health").status_code == 200, timeout=60, what="the restarted service")
    bob_sessions = hub.wait_for(
        lambda: [s for s in sessions_of(hub, "bob", tokens["admin"]) if same_moment(s["started"], bob_started)] or None,
        what="bob's reconciled session",
    )
    carol = hub.wait_for(
        lambda: (
            [s for s in sessions_of(hub, "carol", tokens["admin"])][-1]
            if sessions_of(hub, "carol", tokens["admin"])[-1]["stopped"]
            else None
        ),
        what="carol's reconciled stop",
    )
    assert len(bob_sessions) == 1 and bob_sessions[0]["source"] == "reconciled"
    assert bob_sessions[0]["profile"] == "cpu" and bob_sessions[0]["mem_limit_bytes"]  # resolved resources
    assert abs(parse(carol["stopped"]) - carol_stopped) <= INTERVAL + 2
    stop_server(hub, "bob", tokens["bob"])
    hub.wait_for(lambda: all(s["stopped"] for s in sessions_of(hub, "bob", tokens["admin"])), what="bob's stop")
    after = {name: len(sessions_of(hub, name, tokens["admin"])) for name in ("bob", "carol")}
    assert after == {"bob": before["bob"] + 1, "carol": before["carol"] + 1}


def test_hub_restart_neither_duplicates_nor_drops_a_session(hub_factory, tmp_path):
    client = hub_factory(
        usage_config(tmp_path), "restart-hub", extra_config=FAST + "c.JupyterHub.cleanup_servers = False\n"
    )
    local = client.hub
    client.login("bob")
    token = client.user_token("bob")
    client.wait_for(lambda: usage_get(client, "/health").status_code == 200, what="the usage service")
    started = start_server(client, "bob", token, {})
    client.wait_for(lambda: sessions_of(client, "bob", token), what="bob's session")

    # 1. the hub restarts, bob's server keeps running: still one open session
    local.stop(end_leftovers=False)
    local.start(timeout=90)
    client.wait_for(lambda: usage_get(client, "/health").status_code == 200, what="the service after restart")
    wait_for_reconciliations(client)
    (session,) = sessions_of(client, "bob", token)
    assert same_moment(session["started"], started) and session["stopped"] is None

    # 2. the hub stops every server as it shuts down (the default): the stop is not lost
    local.extra_config = local.extra_config.replace("c.JupyterHub.cleanup_servers = False", "")
    local.stop(end_leftovers=False)
    local.start(timeout=90)  # now with the default
    client.wait_for(lambda: usage_get(client, "/health").status_code == 200, what="the service")
    local.stop(end_leftovers=False)
    shutdown = time.time()
    local.start(timeout=90)
    (session,) = client.wait_for(
        lambda: [s for s in sessions_of(client, "bob", token) if s["stopped"]] or None,
        timeout=60,
        what="bob's session closed after the restart",
    )
    assert session["stop_reason"] == "reconciled"
    assert abs(parse(session["stopped"]) - shutdown) <= INTERVAL + 3
    assert len(sessions_of(client, "bob", token)) == 1
