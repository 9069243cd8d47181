"""What servers used, not only what they reserved (issue 26): a server's process tree is
sampled, and its CPU and memory peak reach its session, checked against `ps` and against
what a notebook's code allocated."""

import asyncio
import csv
import io
import json
import os
import re
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import pytest
import requests
import yaml
from bs4 import BeautifulSoup
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from twoi2c_hub import server_account
from twoi2c_hub.accounting.use import Sample, add_sample, figures
from twoi2c_hub.paths import examples_dir
from twoi2c_hub.services.usage.measuring import ProcessTrees

MiB = 1024**2
GiB = 1024**3

# a parent that starts a child; the child takes ALLOCATE MiB (every page touched), burns
# CPU, says how much CPU it used, frees the memory, then waits
TREE = """
import resource, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", '''
import resource, sys, time
print("ready", flush=True); sys.stdin.readline()
block = bytearray({mib} * 1024 * 1024)
block[::4096] = b"x" * len(block[::4096])
end = time.process_time() + 0.5
while time.process_time() < end: pass
print("holding", flush=True); sys.stdin.readline()
del block
usage = resource.getrusage(resource.RUSAGE_SELF)
print("freed", usage.ru_utime + usage.ru_stime, flush=True)
time.sleep(600)
'''], stdin=subprocess.PIPE, stdout=sys.stdout, text=True)
for line in sys.stdin:
    child.stdin.write(line); child.stdin.flush()
"""


def tree_rss_by_ps(root: int) -> int:
    """The resident memory of `root` and its descendants as `ps` tells it."""
    rows = [line.split() for line in subprocess.run(["ps", "-e", "-o", "pid=,ppid=,rss="], capture_output=True,
                                                    text=True, check=True).stdout.splitlines()]  # fmt: skip
    children, rss = {}, {}
    for pid, ppid, kib in rows:
        children.setdefault(int(ppid), []).append(int(pid))
        rss[int(pid)] = int(kib) * 1024
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, ()))
    return total


def test_a_process_tree_is_measured_with_its_childrens_memory_peak_and_cpu():
    allocate = 300
    parent = subprocess.Popen([sys.executable, "-c", TREE.format(mib=allocate)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    trees = ProcessTrees()
    server = ("ann", "", int(time.time() * 1000) - 1000)
    try:
        assert parent.stdout.readline().strip() == "ready"
        before = trees.sample({server: parent.pid}, 0)[server]
        assert before.mem_bytes == pytest.approx(tree_rss_by_ps(parent.pid), rel=0.1)
        base = before.mem_bytes
        parent.stdin.write("go\n")
        parent.stdin.flush()
        assert parent.stdout.readline().strip() == "holding"
        holding = trees.sample({server: parent.pid}, 1)[server]
        assert holding.mem_bytes == pytest.approx(tree_rss_by_ps(parent.pid), rel=0.1)
        assert holding.mem_bytes == pytest.approx(base + allocate * MiB, rel=0.1)
        parent.stdin.write("go\n")
        parent.stdin.flush()
        word, cpu = parent.stdout.readline().split()
        assert word == "freed"
        after = trees.sample({server: parent.pid}, 2)[server]
        # the memory is given back, and the peak since is still known (the high-water marks)
        assert after.mem_bytes < base + allocate * MiB / 2
        assert after.mem_peak_bytes == pytest.approx(base + allocate * MiB, rel=0.1)
        # the child's CPU, as it measured it itself, is in the tree's
        assert after.cpu_seconds - before.cpu_seconds == pytest.approx(float(cpu), abs=0.15)
        # a process id that is older than the session is not its server
        assert trees.sample({("ann", "", int(time.time() * 1000) + 60_000): parent.pid}, 3) == {}
    finally:
        parent.kill()
        parent.wait()


def test_samples_add_up_to_averages_peaks_and_the_share_measured(db):
    from twoi2c_hub.accounting.events import ServerStart, ServerStarted
    from twoi2c_hub.accounting.models import ServerSession, SessionUse
    from twoi2c_hub.accounting.recording import record

    started = 1_800_000_000_000
    record(db, [ServerStarted(ServerStart(username="ann", server_name="", started_ms=started))])
    db.commit()
    session = db.query(ServerSession).one()
    # every 30 s: cumulative CPU seconds and memory now (GiB), as a sampler tells them
    looks = [(0, 10.0, 1), (30, 40.0, 2), (60, 40.0, 4), (60, 99.0, 9), (90, 35.0, 1)]
    for seconds, cpu, gib in looks:
        add_sample(db, session.id, Sample(started + 60_000 + seconds * 1000, cpu, gib * 1024**3))
    db.commit()
    use = figures(db.get(SessionUse, session.id), started, None)
    # the repeated moment is ignored; the last step's CPU went down (a process ended
    # unseen): it counts as none, never as negative
    assert use["samples"] == 4
    assert use["cpuCoreUsageAverage"] == pytest.approx(30 / 90)
    assert use["cpuCoreUsageMax"] == pytest.approx(1.0)
    assert use["ramByteUsageAverage"] == pytest.approx((2 + 4 + 1) * 30 / 90 * 1024**3)
    assert use["ramByteUsageMax"] == 4 * 1024**3
    assert use["measuredShare"] == pytest.approx(90 / 150)


@pytest.fixture(scope="module")
def measured_hub(hub_factory, tmp_path_factory):
    """The demo community's hub, its servers measured every second, with a budget."""
    config = yaml.safe_load((examples_dir() / "demo-community.yaml").read_text())
    config.setdefault("usage", {})["measure_interval"] = 1
    config["hub"]["logo_file"] = str(examples_dir() / config["hub"]["logo_file"])
    # a budget: the spawn page then asks the cost service about the person, recent use too
    weekly = {"name": "researchers-weekly", "applies_to": "group", "names": ["researchers"], "limit": 1000,
              "period": "7d", "thresholds": [{"at": 100, "action": "deny"}]}  # fmt: skip
    config["budgets"] = {"budgets": [weekly]}
    path = tmp_path_factory.mktemp("measured") / "community.yaml"
    path.write_text(yaml.safe_dump(config))
    account = server_account.ensure() if os.geteuid() == 0 else None
    return hub_factory(path, "measured-hub", server_account=account)


@pytest.fixture(scope="module")
def unbudgeted_hub(hub_factory, tmp_path_factory):
    """The demo community's hub with no budgets (so no budget check), its servers measured
    every second."""
    config = yaml.safe_load((examples_dir() / "demo-community.yaml").read_text())
    config.setdefault("usage", {})["measure_interval"] = 1
    config["hub"]["logo_file"] = str(examples_dir() / config["hub"]["logo_file"])
    config.pop("budgets", None)
    path = tmp_path_factory.mktemp("unbudgeted") / "community.yaml"
    path.write_text(yaml.safe_dump(config))
    account = server_account.ensure() if os.geteuid() == 0 else None
    return hub_factory(path, "unbudgeted-hub", server_account=account)


def start_kernel(base: str, token: str) -> str:
    """A new kernel of the server at `base` (through the proxy): its id."""
    kernel = requests.post(f"{base}/api/kernels", headers={"Authorization": f"token {token}"}, json={}, timeout=60)
    assert kernel.status_code == 201, kernel.text
    return kernel.json()["id"]


async def run_in_kernel(base: str, token: str, kernel: str, code: str) -> None:
    """Run `code` in the kernel, to its end."""
    headers = {"Authorization": f"token {token}"}
    url = f"{base}/api/kernels/{kernel}/channels".replace("http", "ws", 1)
    socket = await websocket_connect(HTTPRequest(url, headers=headers))
    msg_id = uuid.uuid4().hex
    socket.write_message(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "", "session": uuid.uuid4().hex,
                   "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True},
    }))  # fmt: skip
    while True:
        message = json.loads(await asyncio.wait_for(socket.read_message(), 60))
        if message["parent_header"].get("msg_id") == msg_id and message["msg_type"] == "execute_reply":
            assert message["content"]["status"] == "ok", message["content"]
            break
    socket.close()


@pytest.mark.hub
def test_a_notebooks_memory_peak_reaches_its_session_and_the_sessions_api(measured_hub):
    hub = measured_hub
    response = hub.api("POST", "/users/alice/server", json={"profile": "cpu", "resources": "mem_6_9_gib"})
    assert response.status_code in (201, 202), response.text
    hub.wait_for(lambda: (hub.server("alice") or {}).get("ready"), timeout=90, what="alice's server")
    token = hub.user_token("alice")
    base = f"{hub.url}/user/alice"
    allocate, burn = 400, 3.0  # MiB held, CPU seconds burned
    try:
        kernel = start_kernel(base, token)
        asyncio.run(run_in_kernel(base, token, kernel, "import time"))  # the kernel runs: the tree's size before

        def measured(samples):
            answer = requests.get(f"{hub.url}/services/usage/api/v1/sessions", params={"user": "alice"},
                                  headers={"Authorization": f"token {token}"}, timeout=30)  # fmt: skip
            sessions = [s for s in answer.json()["data"] if s["stopped"] is None]
            use = sessions[0]["use"] if sessions else None
            return use if use and use["samples"] >= samples else None

        before = hub.wait_for(lambda: measured(2), timeout=30, what="alice's server measured")
        base_rss = tree_rss_by_ps(hub.server_pid("alice"))
        asyncio.run(run_in_kernel(base, token, kernel, (
            f"block = bytearray({allocate} * 1024 * 1024)\n"
            "block[::4096] = b'x' * len(block[::4096])\n"
            "began = time.process_time()\n"
            f"while time.process_time() < began + {burn}: pass\n"
            "time.sleep(2.5)\n"
            "del block\n"
        )))  # fmt: skip
        use = hub.wait_for(lambda: measured(before["samples"] + 3), timeout=30, what="more samples")
        assert use["ramByteUsageMax"] == pytest.approx(base_rss + allocate * MiB, rel=0.1)
        assert 0 < use["ramByteUsageAverage"] < use["ramByteUsageMax"]
        # the seconds of CPU the notebook burned, and touching the memory and the server's own
        # work around it: up to about 2 s more on a machine busy with the rest of the suite,
        # less than the burn counted twice
        used = use["cpuCoreUsageAverage"] * use["measuredSeconds"] - before["cpuCoreUsageAverage"] * before[
            "measuredSeconds"]  # fmt: skip
        assert 0.9 * burn <= used <= burn + 2.5
        assert 0 < use["measuredShare"] <= 1

        # alice reads it on her usage page, against her server's limit, and in the CSV
        page = BeautifulSoup(hub.login("alice").get(f"{hub.url}/services/usage/", timeout=30).text, "html.parser")
        running = next(r for r in page.select("#usage-sessions tbody tr") if "running" in r.get_text())
        limit = int(hub.server_environ("alice")["MEM_LIMIT"]) / 1024**3  # the limit the server runs with
        shown = running.select_one(".twoi2c-memory-used").get_text(" ", strip=True)
        assert running.select("td")[3].get_text(strip=True) == "Shared CPU server"  # the profile's name, not its slug
        assert re.fullmatch(r"at most (\d+\.\d) GiB of (\d+\.\d) GiB", shown), shown
        peak_gib, limit_gib = (float(v) for v in re.findall(r"\d+\.\d", shown))
        assert (
            abs(peak_gib - (base_rss + allocate * MiB) / 1024**3) <= 0.1 * (base_rss + allocate * MiB) / 1024**3 + 0.05
        )
        assert limit_gib == pytest.approx(limit, abs=0.05)
        rows = list(csv.DictReader(io.StringIO(requests.get(
            f"{hub.url}/services/usage/api/v1/sessions", params={"user": "alice", "format": "csv"},
            headers={"Authorization": f"token {token}"}, timeout=30).text)))  # fmt: skip
        assert [float(r["ram_byte_usage_max"]) for r in rows if not r["stopped"]] >= [use["ramByteUsageMax"]]

        # and how efficient her server was: it reserved far more than it used
        efficiency = f"{hub.url}/services/usage/api/v1/efficiency"
        answer = requests.get(efficiency, params={"window": "today"}, headers={"Authorization": f"token {token}"},
                              timeout=30).json()["data"]  # fmt: skip
        assert [(r["name"], r["sessions"]) for r in answer] == [("alice", 1)]
        assert 0 < answer[0]["ramEfficiency"] < 0.5 and 0 <= answer[0]["cpuEfficiency"] < 1
        # her server is a share of the demo's n2-highmem-4 (4 CPUs, 32 GiB, 0.2622 an hour):
        # what it left unused costs at that price split by the CPU:RAM price ratio
        sessions = requests.get(f"{hub.url}/services/usage/api/v1/sessions", params={"user": "alice"},
                                headers={"Authorization": f"token {token}"}, timeout=30).json()["data"]  # fmt: skip
        assert [s["instance_type"] for s in sessions] == ["n2-highmem-4"]
        prices = yaml.safe_load((examples_dir() / "demo-community.yaml").read_text())["pricing"]["prices"][0]
        ratio = prices["cpu_core_hour"] / prices["memory_gib_hour"]
        ram = prices["instances"]["n2-highmem-4"]["on_demand"] / (4 * ratio + 32)
        unused = answer[0]["cpuCoreHoursUnused"] * ram * ratio + answer[0]["ramGiBHoursUnused"] * ram
        assert answer[0]["costUnused"] == pytest.approx(unused) and answer[0]["costUnused"] > 0
        bob = {"Authorization": f"token {hub.user_token('bob')}"}
        assert requests.get(efficiency, params={"user": "alice"}, headers=bob, timeout=30).status_code == 403

        # right-sizing advice is for admins: her session is in it, too few to advise on
        sizing = f"{hub.url}/services/usage/api/v1/right-sizing"
        assert requests.get(sizing, headers={"Authorization": f"token {token}"}, timeout=30).status_code == 403
        admin = {"Authorization": f"token {hub.user_token('admin')}"}
        rows = requests.get(sizing, params={"window": "today"}, headers=admin, timeout=30).json()["data"]
        assert [(r["profile"], r["sessions"], r["suggestion"]) for r in rows] == [("cpu", 1, None)]
        assert rows[0]["ramByteUsageMax"]["max"] == pytest.approx(use["ramByteUsageMax"], rel=0.05)
        # and on the community's usage page, in words and figures
        today = datetime.now(UTC).date().isoformat()
        admin_page = BeautifulSoup(hub.login("admin").get(f"{hub.url}/services/usage/admin",
                                   params={"start": today, "end": today}, timeout=30).text, "html.parser")  # fmt: skip
        (line,) = admin_page.select("#usage-right-sizing tbody tr")
        cells = [td.get_text(" ", strip=True) for td in line.select("td")]
        assert cells[0] == "Shared CPU server" and cells[2] == "1"
        assert float(cells[5].removesuffix(" GiB")) == pytest.approx(use["ramByteUsageMax"] / 1024**3, abs=0.1)
        assert "too few sessions" in admin_page.select_one(".twoi2c-advice-none").get_text()
    finally:
        hub.stop_server("alice")
    # the next time she chooses, the spawn page says what her last session used
    page = BeautifulSoup(hub.login("alice").get(f"{hub.url}/hub/spawn", timeout=30).text, "html.parser")
    said = page.select_one("[data-profile=cpu] .twoi2c-recent-use").get_text(" ", strip=True)
    match = re.fullmatch(r"Your last session here used at most (\d+\.\d) GiB of memory and (\d+\.\d) CPU on average\.",
                         said)  # fmt: skip
    assert match, said
    assert float(match.group(1)) == pytest.approx(use["ramByteUsageMax"] / 1024**3, abs=0.1)
    assert page.select_one("[data-profile=gpu] .twoi2c-recent-use") is None  # nothing measured there


def _session_with_use(db, username, started_ms, stopped_ms, groups, use, **resources):
    from twoi2c_hub.accounting.events import ServerStart, ServerStarted, ServerStopped
    from twoi2c_hub.accounting.models import ServerSession, SessionUse
    from twoi2c_hub.accounting.recording import record

    start = ServerStart(username=username, server_name="", started_ms=started_ms, profile="p", groups=groups,
                        **resources)  # fmt: skip
    record(db, [ServerStarted(start), ServerStopped(username, "", stopped_ms, "user", started_ms)])
    session = db.query(ServerSession).filter_by(username=username, started_ms=started_ms).one()
    measured, cpu_cores, mem_bytes = use
    db.add(SessionUse(session_id=session.id, samples=2, first_sample_ms=started_ms, last_sample_ms=stopped_ms,
                      measured_ms=measured, cpu_core_ms=cpu_cores * measured, cpu_seconds_at_last=0.0,
                      cpu_peak_cores=cpu_cores, mem_byte_ms=mem_bytes * measured,
                      mem_peak_bytes=mem_bytes))  # fmt: skip
    db.commit()


def test_efficiency_is_what_was_used_against_what_was_reserved_over_the_time_measured(db):
    """Worked by hand: ann's first server (2 CPUs and 4 GiB guaranteed) used 1 core and
    1 GiB for its 4 hours, all measured; her second (no guarantee: a limit of 1 CPU and
    2 GiB) used 0.5 core and 2 GiB over 2 of its 4 hours measured, and the window holds
    half of it."""
    from twoi2c_hub.accounting.models import HOUR_MS
    from twoi2c_hub.accounting.use import efficiency
    from twoi2c_hub.catalog.pricing import Rates

    t0, GiB = 1_800_000_000_000 // HOUR_MS * HOUR_MS, 1024**3
    _session_with_use(db, "ann", t0, t0 + 4 * HOUR_MS, ["g1"], (4 * HOUR_MS, 1.0, GiB),
                      cpu_guarantee=2.0, cpu_limit=4.0, mem_guarantee_bytes=4 * GiB)  # fmt: skip
    _session_with_use(db, "ann", t0 + 8 * HOUR_MS, t0 + 12 * HOUR_MS, ["g1", "g2"], (2 * HOUR_MS, 0.5, 2 * GiB),
                      cpu_limit=1.0, mem_limit_bytes=2 * GiB)  # fmt: skip
    window = (t0, t0 + 10 * HOUR_MS)
    (ann,) = efficiency(db, *window, "user")
    assert ann["name"] == "ann" and ann["sessions"] == 2
    assert all(type(v) in (str, int, float) for v in ann.values())  # JSON's, on PostgreSQL too
    assert ann["measuredHours"] == pytest.approx(5)
    assert ann["cpuCoreUsageAverage"] == pytest.approx(4.5 / 5)
    assert ann["cpuCoreRequestAverage"] == pytest.approx(9 / 5)
    assert ann["cpuEfficiency"] == pytest.approx(0.5)
    assert ann["ramByteUsageAverage"] == pytest.approx(6 / 5 * GiB)
    assert ann["ramEfficiency"] == pytest.approx(6 / 18)
    assert ann["cpuCoreHoursUnused"] == pytest.approx(4.5)
    assert ann["ramGiBHoursUnused"] == pytest.approx(12)
    # cost-weighted at 0.04 a core-hour and 0.005 a GiB-hour: 0.21 used of 0.45 reserved
    (priced,) = efficiency(db, *window, "user", rates=lambda _: Rates(0.04, 0.005, 0.0))
    assert priced["totalEfficiency"] == pytest.approx(0.21 / 0.45)
    assert priced["costUnused"] == pytest.approx(4.5 * 0.04 + 12 * 0.005)
    assert "totalEfficiency" not in ann  # no prices: no money figures
    g1, g2 = efficiency(db, *window, "group")
    assert (g1["name"], g1["cpuEfficiency"]) == ("g1", pytest.approx(0.5))
    assert (g2["name"], g2["sessions"], g2["cpuEfficiency"], g2["ramEfficiency"]) == ("g2", 1, 0.5, 1.0)
    assert g2["ramGiBHoursUnused"] == 0
    # a session never measured has no part in it; a person with none has no row
    assert efficiency(db, *window, "user", username="bob") == []


def test_what_was_reserved_but_not_used_costs_at_an_instance_types_price_split_as_opencost_splits_it(db):
    """Worked by hand. The hub prices a CPU core-hour at 0.04 and a GiB-hour at 0.005 (8 to
    1), and an n2-highmem-4 (4 CPUs, 32 GiB) at 0.48 an hour. Split as OpenCost splits a
    node's price, by the resource prices' ratio so that the whole machine costs its price:
    a GiB-hour on it costs 0.48 / (4 * 8 + 32) = 0.0075 and a core-hour 8 times that, 0.06.
    Ann's server there (2 CPUs and 8 GiB guaranteed) used half a core and 2 GiB for its 4
    hours: 6 core-hours and 24 GiB-hours unused, 6 * 0.06 + 24 * 0.0075 = 0.54; it used
    2 * 0.06 + 8 * 0.0075 = 0.18 of the 8 * 0.06 + 32 * 0.0075 = 0.72 it reserved. Her
    server on no instance type (1 CPU and 2 GiB) used 1 core and 1 GiB for 2 hours: 2
    GiB-hours unused at the resource price, 0.01; 0.09 used of 0.10. On a hub priced only
    per instance type, that second server has no price: her money figures are None, not a
    part of them; the instance's split then takes OpenCost's default CPU:RAM ratio."""
    from datetime import date

    from twoi2c_hub.accounting.models import HOUR_MS
    from twoi2c_hub.accounting.use import efficiency
    from twoi2c_hub.catalog import INSTANCE_TYPES, InstancePrice, PriceTable
    from twoi2c_hub.catalog.pricing import DEFAULT_CPU_CORE_HOUR, DEFAULT_MEMORY_GIB_HOUR, cpu_and_memory_rates

    t0, GiB = 1_800_000_000_000 // HOUR_MS * HOUR_MS, 1024**3
    _session_with_use(db, "ann", t0, t0 + 4 * HOUR_MS, [], (4 * HOUR_MS, 0.5, 2 * GiB), cpu_guarantee=2.0,
                      mem_guarantee_bytes=8 * GiB, instance_type="n2-highmem-4")  # fmt: skip
    _session_with_use(db, "ann", t0 + 5 * HOUR_MS, t0 + 7 * HOUR_MS, [], (2 * HOUR_MS, 1.0, GiB), cpu_guarantee=1.0,
                      mem_guarantee_bytes=2 * GiB)  # fmt: skip
    instance = {"n2-highmem-4": InstancePrice(on_demand=0.48)}
    table = PriceTable(effective=date(2026, 1, 1), cpu_core_hour=0.04, memory_gib_hour=0.005, instances=instance)
    on_it = cpu_and_memory_rates(table, INSTANCE_TYPES["n2-highmem-4"], "on_demand")
    assert (on_it.cpu, on_it.memory) == (pytest.approx(0.06), pytest.approx(0.0075))

    def rates(instance_type, table=table):
        return cpu_and_memory_rates(table, INSTANCE_TYPES.get(instance_type), "on_demand")

    (ann,) = efficiency(db, t0, t0 + 8 * HOUR_MS, "user", rates=rates)
    assert ann["sessions"] == 2
    assert ann["costUnused"] == pytest.approx(0.54 + 0.01)
    assert ann["totalEfficiency"] == pytest.approx((0.18 + 0.09) / (0.72 + 0.10))
    # the window of the instance's server alone: only its figures
    (alone,) = efficiency(db, t0, t0 + 4 * HOUR_MS, "user", rates=rates)
    assert (alone["costUnused"], alone["totalEfficiency"]) == (pytest.approx(0.54), pytest.approx(0.25))

    only_instances = PriceTable(effective=date(2026, 1, 1), instances=instance)
    (ann,) = efficiency(db, t0, t0 + 8 * HOUR_MS, "user", rates=lambda name: rates(name, only_instances))
    assert (ann["costUnused"], ann["totalEfficiency"]) == (None, None)
    (alone,) = efficiency(db, t0, t0 + 4 * HOUR_MS, "user", rates=lambda name: rates(name, only_instances))
    ram = 0.48 / (4 * DEFAULT_CPU_CORE_HOUR / DEFAULT_MEMORY_GIB_HOUR + 32)
    cpu = ram * DEFAULT_CPU_CORE_HOUR / DEFAULT_MEMORY_GIB_HOUR
    assert alone["costUnused"] == pytest.approx(6 * cpu + 24 * ram)
    assert alone["totalEfficiency"] == pytest.approx((2 * cpu + 8 * ram) / (8 * cpu + 32 * ram))


# the same figures by plain SQL over the sessions and their use: an independent reckoning
PLAIN_SQL = """
SELECT {key} AS name, COUNT(*) AS sessions, SUM(u.measured_ms * f) AS measured,
       SUM(u.cpu_core_ms * f) AS cpu_used,
       SUM(COALESCE(s.cpu_guarantee, s.cpu_limit, 0) * u.measured_ms * f) AS cpu_asked,
       SUM(u.mem_byte_ms * f) AS ram_used,
       SUM(COALESCE(s.mem_guarantee_bytes, s.mem_limit_bytes, 0) * u.measured_ms * f) AS ram_asked
FROM (SELECT s.*, (MIN(COALESCE(s.stopped_ms, u.last_sample_ms), :e) - MAX(s.started_ms, :s)) * 1.0
             / MAX(1, COALESCE(s.stopped_ms, u.last_sample_ms) - s.started_ms) AS f
      FROM sessions s JOIN session_use u ON u.session_id = s.id) s
JOIN session_use u ON u.session_id = s.id {join}
WHERE s.f > 0 AND u.measured_ms > 0
GROUP BY name ORDER BY name
"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_efficiency_over_any_window_is_the_plain_sql_reckoning(db):
    import random

    from twoi2c_hub.accounting.models import HOUR_MS
    from twoi2c_hub.accounting.use import efficiency

    rng, t0, GiB = random.Random(5), 1_800_000_000_000, 1024**3
    for i in range(60):
        start = t0 + rng.randrange(0, 200) * HOUR_MS // 3
        length = rng.randrange(1, 30) * HOUR_MS // 4
        _session_with_use(db, f"user{i % 7}", start, start + length, rng.sample(["a", "b", "c"], rng.randrange(1, 3)),
                          (rng.randrange(0, length), rng.random() * 3, rng.randrange(1, 8) * GiB),
                          cpu_guarantee=rng.choice([None, 0.5, 2.0]), cpu_limit=4.0,
                          mem_guarantee_bytes=rng.choice([None, GiB]), mem_limit_bytes=8 * GiB)  # fmt: skip
    connection = db.connection().connection.driver_connection
    for _ in range(20):
        a = t0 + rng.randrange(-10, 80) * HOUR_MS
        b = a + rng.randrange(1, 60) * HOUR_MS
        for aggregate, key, join in [
            ("user", "s.username", ""),
            ("profile", "COALESCE(s.profile, '')", ""),
            ("group", "g.group_name", "JOIN session_groups g ON g.session_id = s.id"),
        ]:
            wanted = connection.execute(PLAIN_SQL.format(key=key, join=join), {"s": a, "e": b}).fetchall()
            got = efficiency(db, a, b, aggregate)
            assert [r["name"] for r in got] == [w[0] for w in wanted]
            for row, (_, sessions, measured, cpu_used, cpu_asked, ram_used, ram_asked) in zip(got, wanted, strict=True):
                assert row["sessions"] == sessions
                assert row["measuredHours"] == pytest.approx(measured / HOUR_MS)
                assert row["cpuEfficiency"] == pytest.approx(cpu_used / cpu_asked)
                assert row["ramEfficiency"] == pytest.approx(ram_used / ram_asked)
                assert row["cpuCoreHoursUnused"] == pytest.approx(max(0, cpu_asked - cpu_used) / HOUR_MS, abs=1e-9)


def cadvisor_and_dcgm_series(t0: int, minutes: int) -> str:
    """A half hour of what cAdvisor and DCGM's exporter give Prometheus, every 15 s, in
    their label shapes: ann's pod (a notebook container using half a core and 1 GiB, for
    a minute 3 GiB; a sidecar at a tenth of a core and 100 MiB; the pod's own cgroup and
    its pause container, which are not counted twice; a GPU at 40 %), cy's pod (no GPU)
    in the same namespace, and a pod of another namespace."""
    families = {"container_cpu_usage_seconds_total": [], "container_memory_working_set_bytes": [],
                "DCGM_FI_DEV_GPU_UTIL": []}  # fmt: skip
    for t in range(t0, t0 + minutes * 60 + 1, 15):
        s = t - t0
        spike = 630 <= s < 690  # from 10:30 to 11:30: between two looks, only a peak sees it
        for ns, pod, cores, memory in [
            ("hub", "jupyter-ann", 0.5, (3 if spike else 1) * GiB),
            ("hub", "jupyter-cy", 1.5, 2 * GiB),
            ("other", "jupyter-ann", 3.0, 9 * GiB),
        ]:
            containers = [("notebook", cores, memory), ("git-sync", 0.1, 100 * MiB), ("POD", 0.001, MiB),
                          ("", cores + 0.101, memory + 101 * MiB)]  # fmt: skip
            for container, c, m in containers:
                labels = f'container="{container}",namespace="{ns}",pod="{pod}"'
                families["container_cpu_usage_seconds_total"].append(f"{{{labels}}} {c * s:.3f} {t}")
                families["container_memory_working_set_bytes"].append(f"{{{labels}}} {m} {t}")
        families["DCGM_FI_DEV_GPU_UTIL"].append(
            f'{{gpu="0",container="notebook",namespace="hub",pod="jupyter-ann"}} 40 {t}'
        )
    # each family together, after its type (all gauges to Prometheus's queries)
    text = "".join(f"# TYPE {name} gauge\n" + "".join(f"{name}{line}\n" for line in lines)
                   for name, lines in families.items())  # fmt: skip
    return text + "# EOF\n"


def test_pods_are_measured_from_the_clusters_prometheus_in_cadvisors_and_dcgms_shapes(tmp_path, db):
    from prometheus import BackfilledPrometheus

    from twoi2c_hub.accounting.events import ServerStart, ServerStarted
    from twoi2c_hub.accounting.models import ServerSession, SessionUse
    from twoi2c_hub.accounting.recording import record
    from twoi2c_hub.services.usage.measuring import PrometheusPods

    t0 = (int(time.time()) - 6 * 3600) // 3600 * 3600  # hours ago: wholly in the backfilled blocks
    prometheus = BackfilledPrometheus(tmp_path, cadvisor_and_dcgm_series(t0, 30))
    try:
        pods = {("ann", "", t0 * 1000): ("hub", "jupyter-ann"), ("cy", "", t0 * 1000): ("hub", "jupyter-cy"),
                ("dee", "", t0 * 1000): ("hub", "jupyter-dee")}  # fmt: skip
        for username, *_ in pods:
            record(db, [ServerStarted(ServerStart(username=username, server_name="", started_ms=t0 * 1000))])
        db.commit()
        ids = {s.username: s.id for s in db.query(ServerSession)}
        source = PrometheusPods(prometheus.url)
        for minute in range(2, 30, 2):
            samples = asyncio.run(source.sample(pods, (t0 + minute * 60) * 1000, 120))
            for (username, _, _), sample in samples.items():
                add_sample(db, ids[username], sample)
        db.commit()
        ann, cy = (figures(db.get(SessionUse, ids[u]), t0 * 1000, None) for u in ("ann", "cy"))
        # the notebook and the sidecar, not the pod's cgroup or pause container again
        assert ann["cpuCoreUsageAverage"] == pytest.approx(0.6)
        assert ann["ramByteUsageAverage"] == pytest.approx(GiB + 100 * MiB)
        assert ann["ramByteUsageMax"] == 3 * GiB + 100 * MiB  # the minute between two looks
        assert ann["gpuUtilizationAverage"] == pytest.approx(0.4)
        assert (cy["cpuCoreUsageAverage"], cy["gpuUtilizationAverage"]) == (pytest.approx(1.6), None)
        # a pod Prometheus has nothing of is not measured (no row), never a zero
        assert db.get(SessionUse, ids["dee"]) is None
    finally:
        prometheus.stop()
    # Prometheus gone: an error the sampler catches and logs, never a sample of zeros
    with pytest.raises(OSError):
        asyncio.run(source.sample(pods, (t0 + 1800) * 1000, 120))


def test_right_sizing_says_which_smaller_choice_most_sessions_fitted_and_what_it_saves(db):
    """Worked by hand: ten 2-hour sessions on 28 GiB, nine of which peaked at 5 GiB or
    less, and five on 7 GiB. 90 % of the 28 GiB ones fitted 7 GiB with 10 % to spare:
    offering 7 GiB first saves 9 sessions x 2 h x 21 GiB = 378 GiB-hours, 1.89 USD at
    0.005 USD a GiB-hour."""
    from twoi2c_hub.accounting.models import HOUR_MS
    from twoi2c_hub.accounting.sizing import right_sizing

    t0 = 1_800_000_000_000 // HOUR_MS * HOUR_MS
    for i, peak in enumerate([1, 2, 3, 4, 5, 5, 5, 5, 5, 20]):
        start = t0 + i * 3 * HOUR_MS
        _session_with_use(db, f"u{i}", start, start + 2 * HOUR_MS, ["g"], (2 * HOUR_MS, 0.25 * (i % 3), peak * GiB),
                          mem_guarantee_bytes=28 * GiB)  # fmt: skip
    for i, peak in enumerate([3, 4, 5, 6, 6]):
        start = t0 + i * 3 * HOUR_MS
        _session_with_use(db, f"v{i}", start, start + HOUR_MS, ["g"], (HOUR_MS, 1.0, peak * GiB),
                          mem_guarantee_bytes=7 * GiB)  # fmt: skip
    big, small = right_sizing(db, t0, t0 + 40 * HOUR_MS, 0.005, "USD")
    assert (big["profile"], big["reservedBytes"], big["sessions"]) == ("p", 28 * GiB, 10)
    assert big["ramByteUsageMax"] == {"p50": 5 * GiB, "p90": 5 * GiB, "p99": 20 * GiB, "max": 20 * GiB}
    assert big["cpuCoreUsageAverage"] == {"p50": 0.25, "p90": 0.5}
    suggestion = big["suggestion"]
    assert suggestion["reservedBytes"] == 7 * GiB and suggestion["share"] == 0.9
    assert suggestion["gibHoursSaved"] == pytest.approx(378)
    assert suggestion["costSaved"] == pytest.approx(1.89)
    assert suggestion["text"] == (
        "90 % of sessions on 'p, 28 GiB' peaked under 6.3 GiB; offering the 7 GiB choice first "
        "would have cost about 2 USD less."
    )
    assert small["reservedBytes"] == 7 * GiB and small["suggestion"] is None  # nothing smaller is offered
    # without a memory price, the saving in GiB-hours; with too few sessions, no advice
    (big, _) = right_sizing(db, t0, t0 + 40 * HOUR_MS)
    assert big["suggestion"]["text"].endswith("would have reserved 378 GiB-hours less.")
    assert all(row["suggestion"] is None for row in right_sizing(db, t0, t0 + 10 * HOUR_MS, 0.005, "USD"))


def test_every_way_a_server_stops_is_said_in_words():
    from twoi2c_hub.accounting.models import STOP_REASON_WORDS, STOP_REASONS

    assert set(STOP_REASON_WORDS) == set(STOP_REASONS)
    # a sentence, never the records' own names for them
    assert all(
        " " in words and "culler" not in words and "reconciled" not in words for words in STOP_REASON_WORDS.values()
    )


@pytest.mark.hub
def test_the_spawn_page_says_what_recent_sessions_used_on_a_hub_without_budgets(unbudgeted_hub):
    """No budgets, so no budget check to carry it: the spawn page asks the usage service
    what the person's last sessions on each profile used, and says it beside that profile."""
    hub = unbudgeted_hub
    services = set(hub.api("GET", "/services", token=hub.user_token("admin")).json())
    assert "cost-checks" not in services and "usage" in services
    response = hub.api("POST", "/users/alice/server", json={"profile": "cpu", "resources": "mem_6_9_gib"})
    assert response.status_code in (201, 202), response.text
    hub.wait_for(lambda: (hub.server("alice") or {}).get("ready"), timeout=90, what="alice's server")
    token = hub.user_token("alice")

    def measured():
        answer = requests.get(f"{hub.url}/services/usage/api/v1/sessions", params={"user": "alice"},
                              headers={"Authorization": f"token {token}"}, timeout=30)  # fmt: skip
        sessions = [s for s in answer.json()["data"] if s["stopped"] is None]
        use = sessions[0]["use"] if sessions else None
        return use if use and use["samples"] >= 3 else None

    try:
        hub.wait_for(measured, timeout=30, what="alice's server measured")
    finally:
        hub.stop_server("alice")
    answer = requests.get(f"{hub.url}/services/usage/api/v1/sessions", params={"user": "alice"},
                          headers={"Authorization": f"token {token}"}, timeout=30).json()["data"]  # fmt: skip
    (use,) = [s["use"] for s in answer if s["profile"] == "cpu"]
    page = BeautifulSoup(hub.login("alice").get(f"{hub.url}/hub/spawn", timeout=30).text, "html.parser")
    said = page.select_one("[data-profile=cpu] .twoi2c-recent-use").get_text(" ", strip=True)
    assert said == (
        f"Your last session here used at most {use['ramByteUsageMax'] / 1024**3:.1f} GiB of memory "
        f"and {use['cpuCoreUsageAverage']:.1f} CPU on average."
    )
    assert page.select_one("[data-profile=gpu] .twoi2c-recent-use") is None  # nothing measured there
    # bob has no session: nothing is said beside any choice
    page = BeautifulSoup(hub.login("bob").get(f"{hub.url}/hub/spawn", timeout=30).text, "html.parser")
    assert page.select(".twoi2c-recent-use") == []


def test_recent_use_comes_from_the_budget_check_or_the_usage_service_and_never_holds_the_page():
    """With budgets, the check's answer says it (the usage service is not asked); without,
    the usage service; a usage service that does not answer leaves the page without it, at
    once."""
    from types import SimpleNamespace

    from twoi2c_hub.catalog.budget_answer import BudgetAnswer, RecentUse
    from twoi2c_hub.network import free_port
    from twoi2c_hub.spawners import budget

    nowhere = f"http://127.0.0.1:{free_port()}/services/usage/api/v1/recent-use"  # nothing listens
    spawner = SimpleNamespace(budget_check_url="", usage_recent_use_url=nowhere, usage_events_token="t",
                              usage_recent_use_timeout=1.0, user=SimpleNamespace(name="alice"))  # fmt: skip
    began = time.monotonic()
    assert asyncio.run(budget.recent_use(spawner, None)) == {}
    assert time.monotonic() - began < 1.5
    used = {"cpu": RecentUse(sessions=2, ramByteUsageMax=2**30, cpuCoreUsageAverage=0.5)}
    answer = BudgetAnswer(allowed=True, action="none", recentUse=used)
    spawner.budget_check_url = "http://127.0.0.1:1/check"
    assert asyncio.run(budget.recent_use(spawner, answer)) == used
    assert asyncio.run(budget.recent_use(spawner, None)) == {}  # the check could not be made
