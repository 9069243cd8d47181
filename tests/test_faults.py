"""Faults survived: events held while the database is down, the proxy's words while the hub
restarts, services that end with their hub, and a short run of benchmarks/faults.py."""

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from postgres import PostgresServer
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from twoi2c_hub.accounting.db import make_engine, session_maker, upgrade
from twoi2c_hub.accounting.events import ServerStart, ServerStarted, ServerStopped
from twoi2c_hub.network import free_port
from twoi2c_hub.services.usage.intake import DatabaseUnavailable, EventIntake
from twoi2c_hub.services.usage.metrics import UsageMetrics

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def sessions(engine) -> list[tuple]:
    with engine.connect() as connection:
        query = "SELECT username, started_ms, stopped_ms, stop_reason FROM sessions ORDER BY username"
        return [tuple(row) for row in connection.execute(text(query))]


@pytest.mark.postgres
def test_events_are_held_while_postgresql_is_down_and_written_in_order_after():
    """PostgreSQL stops (a node upgrade): posts are answered, nothing is lost, and once it
    is back the events are written one by one in the order they came: ann's start before
    her stop (the other way round her stop would find no session and it would stay open),
    and a post that comes while events are still held after them."""
    server = PostgresServer("test-faults-" + uuid.uuid4().hex)
    try:
        url = server.new_database()
        upgrade(url)
        engine = make_engine(url)
        metrics = UsageMetrics(CollectorRegistry())
        intake = EventIntake(session_maker(engine), metrics)
        intake.RETRY_SECONDS = 3600  # retried by hand below
        intake.RETRY_BATCH = 1
        ann = ServerStart("ann", "", 1_000_000, profile="cpu", cpu_guarantee=1.0, groups=["students"])
        bob = ServerStart("bob", "", 2_000_000, profile="cpu", cpu_guarantee=1.0, groups=["students"])
        cat = ServerStart("cat", "", 3_000_000, profile="cpu", cpu_guarantee=1.0, groups=["students"])

        async def scenario():
            assert await intake.submit([ServerStarted(bob)]) == 1  # written at once
            server.process.send_signal(2)
            server.process.wait(30)
            assert await intake.submit([ServerStarted(ann)]) == 1  # held, answered
            assert await intake.submit([ServerStopped("ann", "", 4_600_000, "user", ann.started_ms)]) == 1
            assert len(intake.held) == 2 and metrics.held._value.get() == 2
            intake._retry()  # fails: kept, nothing lost
            assert len(intake.held) == 2
            server.start()
            assert await intake.submit([ServerStarted(cat)]) == 1  # behind the held ones
            assert [type(e).__name__ for e in intake.held] == ["ServerStarted", "ServerStopped", "ServerStarted"]
            intake._retry()  # one at a time, in order
            assert len(intake.held) == 2
            while intake.held:
                intake._retry()
            assert metrics.held._value.get() == 0
            intake._retrying.cancel() if intake._retrying else None

        asyncio.run(scenario())
        assert sessions(engine) == [
            ("ann", 1_000_000, 4_600_000, "user"),
            ("bob", 2_000_000, None, None),
            ("cat", 3_000_000, None, None),
        ]
        engine.dispose()
    finally:
        server.stop()


def broken_intake(tmp_path) -> EventIntake:
    """An intake whose database cannot take a write (a file with no tables)."""
    (tmp_path / "usage.sqlite").write_bytes(b"")
    engine = make_engine(f"sqlite:///{tmp_path / 'usage.sqlite'}")
    return EventIntake(session_maker(engine), UsageMetrics(CollectorRegistry()))


def test_held_events_stop_at_their_limit_and_the_refusal_says_why(tmp_path):
    """Up to HELD_AT_MOST events are held, exactly; the next post is refused with words
    (the events API answers it as a 503), and what was held stays held."""
    intake = broken_intake(tmp_path)
    intake.HELD_AT_MOST = 2
    start = ServerStart("ann", "", 1_000_000, profile="cpu", groups=[])

    async def scenario():
        assert await intake.submit([ServerStarted(start)]) == 1
        assert await intake.submit([ServerStarted(start)]) == 1  # the second: at the limit
        with pytest.raises(DatabaseUnavailable, match="unavailable, and 2 events wait already"):
            await intake.submit([ServerStarted(start)])
        assert len(intake.held) == 2
        intake._retrying.cancel()

    asyncio.run(scenario())


def test_events_still_held_when_the_service_stops_are_said_lost(tmp_path, caplog):
    """Held events that cannot be written as the service stops are not dropped silently."""
    intake = broken_intake(tmp_path)
    intake.held = [ServerStarted(ServerStart("ann", "", 1_000_000, profile="cpu", groups=[]))] * 3
    intake.last_write()
    assert "3 accepted events could not be written before the service stopped and are lost" in caplog.text


def test_the_reconciliation_waits_for_held_events(tmp_path):
    """While events are held the reconciliation does not run (it would close their servers
    at a guess that their exact stops could no longer replace); once written, it runs."""
    from twoi2c_hub.services.usage.reconciler import Reconciler

    calls = []

    class Hub:
        async def paged(self, path, params):
            calls.append(path)
            for user in []:
                yield user

    written = [False]
    reconciler = Reconciler(session_maker(make_engine(f"sqlite:///{tmp_path / 'u.sqlite'}")), hub_api=Hub(),
                            catalog=[], interval=15, metrics=UsageMetrics(CollectorRegistry()),
                            held_events_written=lambda: written[0])  # fmt: skip
    upgrade(f"sqlite:///{tmp_path / 'u.sqlite'}")
    assert asyncio.run(reconciler.reconcile()) == {} and calls == []
    written[0] = True
    assert asyncio.run(reconciler.reconcile()) == {"opened": 0, "closed": 0} and calls == ["/users"]


class Answering(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"the hub")

    def log_message(self, *args):
        """Quiet: the test reads the answers, not the server's log."""


def test_the_proxy_says_the_hub_is_restarting_not_404_or_a_bare_503(tmp_path):
    """The proxy started before the hub's route (a hub restarting), and the hub's route
    with nothing answering: both a 503 in words with Retry-After; then the hub answers."""
    port, api_port, hub_port = free_port(), free_port(), free_port()
    proxy = subprocess.Popen(
        [sys.executable, "-m", "twoi2c_hub.proxy", "--ip", "127.0.0.1", "--port", str(port),
         "--api-ip", "127.0.0.1", "--api-port", str(api_port),
         "--error-target", f"http://127.0.0.1:{hub_port}/hub/error"],
        env={"CONFIGPROXY_AUTH_TOKEN": "secret", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                first = requests.get(f"http://127.0.0.1:{port}/hub/login", timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and proxy.poll() is None
                time.sleep(0.2)
        api = f"http://127.0.0.1:{api_port}/api/routes"
        headers = {"Authorization": "token secret"}

        def restarting(answer):
            return (
                answer.status_code == 503
                and answer.headers["Retry-After"] == "5"
                and "<h1>The hub is restarting</h1>" in answer.text
            )

        assert restarting(first), (first.status_code, first.text[:300])
        # a hub under /x/: an address outside it is still a plain 404, not "restarting"
        requests.post(f"{api}/x/", json={"target": f"http://127.0.0.1:{hub_port}"}, headers=headers, timeout=5)
        elsewhere = requests.get(f"http://127.0.0.1:{port}/other", timeout=10)
        assert elsewhere.status_code == 404 and "restarting" not in elsewhere.text
        requests.post(f"{api}/", json={"target": f"http://127.0.0.1:{hub_port}"}, headers=headers, timeout=5)
        assert restarting(requests.get(f"http://127.0.0.1:{port}/hub/login", timeout=10))  # nothing answers
        hub = ThreadingHTTPServer(("127.0.0.1", hub_port), Answering)
        threading.Thread(target=hub.serve_forever, daemon=True).start()
        try:
            answer = requests.get(f"http://127.0.0.1:{port}/hub/login", timeout=10)
            assert (answer.status_code, answer.text) == (200, "the hub")
        finally:
            hub.shutdown()
    finally:
        proxy.terminate()
        proxy.wait(10)


@pytest.mark.hub
@pytest.mark.postgres
def test_faults_benchmark_short_run_loses_nothing():
    """Two rounds of benchmarks/faults.py with few people: the hub killed -9 (and
    restarted as its supervisor would) and the accounting database's disk full. Every
    server is one session with the right start and stop, the people whose budget is used
    up are refused, the pages people saw during the restart say so in words, and no service
    of the killed hub is left running beside the new one's."""
    command = [sys.executable, str(BENCHMARKS / "faults.py"), "--people", "6", "--window", "12", "--hold", "6",
               "--give-up", "240", "--faults", "hub-kill,disk-full", "--disk-full-seconds", "12"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(figures["rounds"]) == {"hub-kill", "disk-full"}
    for kind, round_ in figures["rounds"].items():
        assert round_["sessions"] == {"lost": [], "duplicated": [], "wrong_start": [], "stop_late": [],
                                      "left_open": []}, kind  # fmt: skip
        assert round_["spent_people"] == 2 and round_["servers_started"] + round_["refused_by_budget"] == 6, kind
        assert round_["budget_decisions"]["wrong"] == [], kind
        assert round_["pages_seen"]["bad"] == 0, round_["pages_seen"]
        assert round_["processes_not_one_each"] == {}, kind
        assert round_["fault"]["back_after_s"] is not None and "error" not in round_["fault"], round_["fault"]
    disk = figures["rounds"]["disk-full"]["fault"]
    assert disk["lasted_s"] >= 12
    assert figures["rounds"]["disk-full"]["database_intact"] is True
    assert figures["targets_met"] is True


def test_the_faults_benchmark_tells_a_damaged_database(tmp_path, monkeypatch):
    """The full-disk round's check of the database: a whole usage database passes, one
    with a page overwritten does not."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from faults import sqlite_intact

    url = f"sqlite:///{tmp_path / 'usage.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    with session_maker(engine)() as db:
        from twoi2c_hub.accounting.recording import record

        record(db, [ServerStarted(ServerStart(f"p{i:04d}", "", i, profile="cpu", groups=["students"]))
                    for i in range(2000)])  # fmt: skip
        db.commit()
    engine.dispose()
    assert sqlite_intact(url)
    data = bytearray((tmp_path / "usage.sqlite").read_bytes())
    page = 4096
    middle = len(data) // page // 2 * page
    data[middle + 8 : middle + 200] = b"\xff" * 192  # a page's cell pointers, overwritten
    (tmp_path / "usage.sqlite").write_bytes(bytes(data))
    assert not sqlite_intact(url)


def test_a_start_still_pending_is_not_a_session_until_it_runs(tmp_path):
    """The reconciliation pass that sees a server still starting (which a budget may yet
    refuse) opens no session for it, and does not close the one its start event opened;
    once it runs, a pass records it if no event did."""
    from twoi2c_hub.services.usage.reconciler import Reconciler

    url = f"sqlite:///{tmp_path / 'usage.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    reconciler = Reconciler(session_maker(engine), hub_api=None, catalog=[], interval=15,
                            metrics=UsageMetrics(CollectorRegistry()))  # fmt: skip
    started = "2026-12-04T10:00:00.000000Z"
    started_ms = 1796378400000

    def hub(pending, ready):
        server = {"started": started, "pending": pending, "ready": ready, "last_activity": started, "user_options": {}}
        return [{"name": "ann", "groups": ["students"], "servers": {"": server}}]

    now = started_ms + 50
    assert reconciler.record_hub_state(hub("spawn", False), now) == {"opened": 0, "closed": 0}
    assert sessions(engine) == []
    # the spawner's start event arrives while the hub still waits for the server to answer
    with session_maker(engine)() as db:
        from twoi2c_hub.accounting.recording import record

        record(db, [ServerStarted(ServerStart("ann", "", started_ms, profile="cpu", groups=["students"]))])
        db.commit()
    assert reconciler.record_hub_state(hub("spawn", False), now + 1000) == {"opened": 0, "closed": 0}
    assert sessions(engine) == [("ann", started_ms, None, None)]
    # a start no event told of, seen running: opened
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM session_groups"))
        connection.execute(text("DELETE FROM sessions"))
    assert reconciler.record_hub_state(hub(None, True), now + 2000)["opened"] == 1
    assert sessions(engine) == [("ann", started_ms, None, None)]
    engine.dispose()


def test_budget_checks_answer_while_event_posts_hang_on_a_stopped_usage_service():
    """A usage service that is stopped (SIGSTOP: its socket accepts, nothing answers) holds
    every event post until its timeout; 150 of them at once must not hold up a spawn-time
    budget check, which answers from its own service at once and says what it said."""
    import socket

    from tornado.web import Application, RequestHandler

    from twoi2c_hub.spawners.budget import ask
    from twoi2c_hub.usage_client import UsageEventPoster

    stopped = socket.socket()
    stopped.bind(("127.0.0.1", 0))
    stopped.listen(100)  # accepted by the kernel, never answered

    class Check(RequestHandler):
        def post(self):
            self.finish({"data": {"allowed": False, "action": "deny", "message": "Your budget is used up."}})

    async def scenario():
        checks = Application([(r"/check", Check)]).listen(0, "127.0.0.1")
        check_port = next(iter(checks._sockets.values())).getsockname()[1]
        poster = UsageEventPoster(f"http://127.0.0.1:{stopped.getsockname()[1]}/events", "token", timeout=5)
        # more than one client's 100 requests at once: a shared client would queue the check
        posts = [poster.post({"type": "stop", "username": f"p{i}"}) for i in range(150)]
        await asyncio.sleep(0.2)  # the posts are in flight, waiting on the stopped service
        began = time.monotonic()
        answer = await ask(f"http://127.0.0.1:{check_port}/check", "token", 3, "ann", ["students"], None)
        took = time.monotonic() - began
        assert answer is not None and (answer.allowed, answer.message) == (False, "Your budget is used up.")
        assert took < 1.5, f"the budget check waited {took:.1f} s behind the event posts"
        assert not any(post.done() for post in posts)  # still hanging, as the service is
        for post in posts:
            post.cancel()
        checks.stop()

    try:
        asyncio.run(scenario())
    finally:
        stopped.close()


PARENT = """import subprocess, sys, time
child = subprocess.Popen([sys.executable, sys.argv[1], sys.argv[2]])
time.sleep(120)
"""
CHILD = """import signal, sys, time
from pathlib import Path
from twoi2c_hub.services.framework.lifecycle import stop_with_the_hub
signal.signal(signal.SIGTERM, lambda *_: (Path(sys.argv[1]).write_text("stopped"), sys.exit(0)))
Path(sys.argv[1]).write_text("watching" if stop_with_the_hub(lambda: None) else "not watching")
time.sleep(120)
"""


@pytest.mark.parametrize("parent_name, expected", [("jupyterhub", "stopped"), ("something-else", "not watching")])
def test_a_service_stops_when_the_jupyterhub_that_started_it_is_killed(tmp_path, parent_name, expected):
    """A service whose parent is a jupyterhub process gets SIGTERM when that process is
    killed -9; under any other parent it does not watch (and runs on)."""
    import os
    import signal

    (tmp_path / parent_name).write_text(PARENT)
    (tmp_path / "service.py").write_text(CHILD)
    said = tmp_path / "said"
    parent = subprocess.Popen([sys.executable, str(tmp_path / parent_name), str(tmp_path / "service.py"), str(said)])
    children: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while not said.exists() or not said.read_text():
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.1)
        assert said.read_text() == ("watching" if expected == "stopped" else "not watching")
        children += [int(p) for p in Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split()]
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10
        while said.read_text() != expected and time.monotonic() < deadline:
            time.sleep(0.1)
        assert said.read_text() == expected
    finally:
        for pid in children:  # the service left running under another parent
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
