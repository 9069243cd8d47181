"""Faults in the middle of a class: each part of the hub hit while people start servers.

A round is a class start (`--people` arriving within `--window` seconds, each holding
their server `--hold` seconds, then stopping it) on a hub started afresh, with the usage
accounting in PostgreSQL; at a random moment of the arrivals one fault hits:

  hub-kill, proxy-kill, usage-kill, cost-kill, cost-checks-kill   kill -9 of that process
  usage-stop, cost-checks-stop   SIGSTOP for `--stop-seconds` (30), then SIGCONT
  postgres-restart   a fast shutdown of PostgreSQL, down `--postgres-down` seconds (15)
  disk-full   the accounting database (SQLite, on a small filesystem of its own) finds
              its disk full for `--disk-full-seconds` (60)

The hub's process is restarted after a kill as systemd's `Restart=on-failure` with
`RestartSec=5` would (the one-machine guide's unit), or Kubernetes its pod; the hub
restarts its own proxy and services. Every other part must come back by itself.

People act as people do: they log in, open the spawn page, choose and press Start,
follow the progress, use the server, stop it; a page that fails is read (its status and
its words are kept) and reloaded a few seconds later, for up to `--give-up` seconds. A
third of them have used their budget up before the round (2 server hours of a 1-hour
budget, recorded as a past session): their starts must be refused.

Each round reports: servers started; sessions recorded (each exactly once, started
between pressing Start and the server answering, stopped within the reconciliation
interval of the server stopping); budget decisions against a recomputation from the
recorded sessions (a used-up budget's start allowed while the check could not be made is
counted apart, `allowed_unchecked_while_down`: the hub allows starts it cannot check,
`when_unreadable: allow`; any other difference is wrong); the sessions by who recorded
them (the spawners' events, or the reconciliation catching up); the pages people saw
that were not what they asked for, by status, with any 5xx page or stack trace named
(the proxy's worded "restarting" page is expected while the hub or its proxy restarts),
and the requests that got no answer at all; the seconds
until every part answered again after the fault ended; processes left over (a service
of a killed hub still running). One JSON object, with `targets_met`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import requests
import yaml

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from class_start import TINY_SERVER, in_client_process, summary, wait_until_stopped  # noqa: E402
from common import wait_for_service  # noqa: E402
from postgres import PostgresServer  # noqa: E402

from twoi2c_hub.accounting.db import make_engine, session_maker, upgrade  # noqa: E402
from twoi2c_hub.accounting.events import ServerStart, ServerStarted, ServerStopped  # noqa: E402
from twoi2c_hub.accounting.models import HOUR_MS  # noqa: E402
from twoi2c_hub.accounting.recording import record  # noqa: E402
from twoi2c_hub.localhub import LocalHub, tagged_processes  # noqa: E402
from twoi2c_hub.paths import demo_config  # noqa: E402

FAULTS = (
    "hub-kill",
    "proxy-kill",
    "usage-kill",
    "cost-kill",
    "cost-checks-kill",
    "usage-stop",
    "cost-checks-stop",
    "postgres-restart",
    "disk-full",
)
RESTART_SECONDS = 5  # systemd's RestartSec in deploy/one-machine/twoi2c-hub.service
RECONCILE_SECONDS = 15
BUDGET_HOURS = 1.0
# which process each part is, by its command line (the hub's is the LocalHub's own)
PARTS = {
    "proxy": lambda cmd: "twoi2c_hub.proxy" in cmd,
    "usage": lambda cmd: "twoi2c_hub.services.usage" in cmd,
    "cost": lambda cmd: "twoi2c_hub.services.cost" in cmd and "--checks-only" not in cmd,
    "cost-checks": lambda cmd: "twoi2c_hub.services.cost" in cmd and "--checks-only" in cmd,
}


def now_ms() -> int:
    return int(time.time() * 1000)


# ---- people --------------------------------------------------------------------------


class Seen(Exception):
    """A page that was not what the person asked for."""

    def __init__(self, step: str, status: int | None, body: str = "", error: str = ""):
        super().__init__(f"{step}: {status or error}")
        self.page = {
            "step": step,
            "status": status,
            "error": error,
            "at_ms": now_ms(),
            "traceback": "Traceback (most recent call last)" in body,
            "words": words(body) if body else error,
        }


def words(html: str) -> str:
    """What a page says, shortly: its title and first heading or paragraph."""
    found = [re.sub(r"<[^>]+>|\s+", " ", m).strip() for m in re.findall(r"<(?:title|h1|p)[^>]*>(.*?)</", html, re.S)]
    return " | ".join(f for f in found if f)[:200] or html[:200]


async def person(hub_url: str, name: str, password: str, delay: float, hold: float, give_up: float, out: list):
    """One person's class: log in, start a server (reloading whatever fails), use it
    `hold` seconds, stop it. What happened, with times, goes in `out`."""
    await asyncio.sleep(delay)
    me = {"name": name, "asked_ms": None, "ready_ms": None, "decision": None, "decided_ms": None,
          "stop_asked_ms": None, "stopped_ms": None, "pages": [], "gave_up": False}  # fmt: skip
    out.append(me)
    jar = aiohttp.CookieJar(unsafe=True)
    timeout = aiohttp.ClientTimeout(total=60)
    deadline = time.monotonic() + give_up
    async with aiohttp.ClientSession(cookie_jar=jar, timeout=timeout) as http:

        async def page(step, method, path, expect=(200,), **kwargs):
            try:
                async with http.request(method, hub_url + path, **kwargs) as r:
                    body = await r.text(errors="replace")
                    if r.status not in expect:
                        raise Seen(step, r.status, body)
                    return r.status, body
            except (TimeoutError, aiohttp.ClientError) as e:
                raise Seen(step, None, error=type(e).__name__) from None

        def xsrf() -> str:
            return next((c.value for c in jar if c.key == "_xsrf"), "")

        logged_in = thought = False
        while time.monotonic() < deadline:
            try:
                if not logged_in:
                    await page("login page", "GET", "/hub/login")
                    data = {"username": name, "password": password, "_xsrf": xsrf()}
                    await page("login", "POST", "/hub/login?next=", (302,), data=data, allow_redirects=False)
                    logged_in = True
                status, body = await page("server state", "GET", f"/hub/api/users/{name}",
                                          headers={"X-XSRFToken": xsrf()})  # fmt: skip
                server = json.loads(body).get("servers", {}).get("")
                if me["stop_asked_ms"]:  # stopping: until the hub has no server for them
                    if server is None:
                        me["stopped_ms"] = now_ms()
                        return
                    await asyncio.sleep(1)
                elif server and server.get("ready"):
                    await page("server", "GET", f"/user/{name}/api/status")
                    if me["ready_ms"] is None:
                        me["ready_ms"] = now_ms()
                        using_until = time.monotonic() + hold
                    if time.monotonic() < using_until:
                        await asyncio.sleep(min(5, using_until - time.monotonic()))
                        continue
                    me.setdefault("stop_tried_ms", now_ms())
                    await page("stop", "DELETE", f"/hub/api/users/{name}/server", (202, 204),
                               headers={"X-XSRFToken": xsrf()})  # fmt: skip
                    me["stop_asked_ms"] = now_ms()
                elif server and server.get("pending"):
                    await follow(page, name, xsrf())
                elif me["ready_ms"]:  # their server is gone (stopped while the hub was down)
                    me["stop_asked_ms"] = me["stop_asked_ms"] or me.get("stop_tried_ms") or now_ms()
                    me["stopped_ms"] = now_ms()
                    return
                elif me["decision"] == "denied":
                    return
                else:
                    await page("spawn page", "GET", "/hub/spawn")
                    if not thought:
                        await asyncio.sleep(random.uniform(1, 4))
                        thought = True
                    if me["asked_ms"] is None:
                        me["asked_ms"] = now_ms()
                    try:
                        form = {"profile": "cpu", "_xsrf": xsrf()}
                        await page("start", "POST", f"/hub/spawn?_xsrf={xsrf()}", data=form)
                    except Seen as e:
                        if e.page["status"] == 403 and "budget" in e.page["words"].lower():
                            me["decision"], me["decided_ms"] = "denied", now_ms()
                            me["refusal"] = e.page["words"]
                            return
                        raise
                    if me["decision"] is None:
                        me["decision"], me["decided_ms"] = "allowed", now_ms()
            except Seen as e:
                me["pages"].append(e.page)
                if e.page["step"] == "progress" and "budget" in e.page["words"].lower():
                    me["decision"], me["decided_ms"] = "denied", now_ms()  # refused as it started
                    me["refusal"] = e.page["words"]
                    return
                if e.page["status"] == 403 and e.page["step"] in ("server state", "stop"):
                    logged_in = False  # a cookie the hub no longer knows: log in again
                await asyncio.sleep(random.uniform(2, 5))  # reading the page, then reloading
        me["gave_up"] = True


async def follow(page, name: str, xsrf: str) -> None:
    """Follow the progress page's event stream until ready or failed (a failed start
    counts as a page seen; the person starts again)."""
    _, body = await page("progress", "GET", f"/hub/api/users/{name}/server/progress?_xsrf={xsrf}")
    for line in body.splitlines():
        if line.startswith("data:"):
            event = json.loads(line[5:])
            if event.get("failed"):
                raise Seen("progress", 200, f"<p>{event.get('message', '')}</p>")


async def a_class(hub_url: str, password: str, people: list[str], window: float, hold: float, give_up: float) -> list:
    out: list = []
    rng = random.Random(11)
    await asyncio.gather(*(person(hub_url, n, password, rng.uniform(0, window), hold, give_up, out) for n in people))
    return out


# ---- the hub and its parts ----------------------------------------------------------


def write_config(work: Path, people: list[str], database_url: str) -> Path:
    """The demo community's hub for a class: every student's budget 1 server hour a month
    (refused at 100 %), starts allowed while the budget cannot be read."""
    config = demo_config()
    config["auth"] = {"provider": "demo", "users": {n: {"groups": ["students"]} for n in people}}
    config["culling"] = {"enabled": False}
    config["usage"] = {"database_url": database_url, "reconcile_interval": RECONCILE_SECONDS}
    config["spawner"]["local"] = {"apply_memory_limit": False, "apply_cpu_limit": False}
    config["budgets"] = {"when_unreadable": "allow", "budgets": [
        {"name": "class", "applies_to": "group", "names": ["students"], "unit": "server_hours",
         "limit": BUDGET_HOURS, "period": "month", "thresholds": [{"at": 100, "action": "deny"}]}]}  # fmt: skip
    path = work / "community.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def spend_budgets(database_url: str, spent: list[str]) -> None:
    """Each of `spent` used 2 server hours earlier this month (ended a minute ago)."""
    upgrade(database_url)
    engine = make_engine(database_url)
    end = now_ms() - 60_000
    with session_maker(engine)() as db:
        for name in spent:
            start = ServerStart(name, "", end - 2 * HOUR_MS, profile="cpu", cpu_guarantee=1.0, groups=["students"])
            record(db, [ServerStarted(start)])
            record(db, [ServerStopped(name, "", end, "user", start.started_ms)])
        db.commit()
    engine.dispose()


def part_pids(hub: LocalHub) -> dict[str, list[int]]:
    """The processes of each part: the hub, its proxy and its services (a part with none
    is listed, with none)."""
    found = {"hub": [hub.process.pid] if hub.process and hub.process.poll() is None else []}
    found.update({part: [] for part in PARTS})
    for pid in tagged_processes(hub.tag):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_text("latin-1").replace("\0", " ")
        except OSError:
            continue
        for part, matches in PARTS.items():
            if matches(cmd):
                found.setdefault(part, []).append(pid)
    return found


def answering(hub: LocalHub, postgres: PostgresServer | None) -> dict[str, bool]:
    """Which parts answer now: the hub through the proxy, each service's /health through
    the proxy, PostgreSQL."""
    result = {}
    for part, path in (("hub", "/hub/api/"), ("usage", "/services/usage/health"), ("cost", "/services/cost/health"),
                       ("cost-checks", "/services/cost-checks/health")):  # fmt: skip
        try:
            result[part] = requests.get(hub.url + path, timeout=3).status_code == 200
        except requests.RequestException:
            result[part] = False
    if postgres is not None:
        import psycopg

        try:
            address = postgres.url("postgres").replace("postgresql+psycopg", "postgresql")
            psycopg.connect(address, connect_timeout=3).close()
            result["postgres"] = True
        except psycopg.OperationalError:
            result["postgres"] = False
    return result


class SmallDisk:
    """A 32 MiB filesystem of its own (tmpfs) for the SQLite accounting database, and a
    file that fills it."""

    def __init__(self, where: Path):
        self.where = where
        where.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(where)], check=True)
        self.filler = where / "filler"

    def fill(self) -> None:
        """Write zeros until not one more byte fits."""
        descriptor = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for size in (1 << 20, 1 << 12, 1):
                chunk = b"\0" * size
                try:
                    while True:
                        os.write(descriptor, chunk)
                except OSError:
                    pass
        finally:
            os.close(descriptor)

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.where)], check=False)


class Fault:
    """One fault at `at` seconds into the round, then the wait for every part."""

    def __init__(self, kind: str, hub: LocalHub, postgres: PostgresServer | None, disk: SmallDisk | None, args):
        self.kind, self.hub, self.postgres, self.disk, self.args = kind, hub, postgres, disk, args
        self.began_ms = self.ended_ms = self.back_ms = self.at_s = None
        self.down: dict[str, float] = {}

    def hit(self) -> None:
        kind = self.kind
        self.began_ms = now_ms()
        if kind.endswith("-kill"):
            part = kind.removesuffix("-kill")
            pids = part_pids(self.hub).get(part, [])
            if not pids:
                raise RuntimeError(f"no {part} process to kill")
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            if part == "hub":
                self.hub.process.wait()
                time.sleep(RESTART_SECONDS)  # the supervisor restarts it
                self.hub.start(timeout=120)
        elif kind.endswith("-stop"):
            pids = part_pids(self.hub)[kind.removesuffix("-stop")]
            for pid in pids:
                os.kill(pid, signal.SIGSTOP)
            time.sleep(self.args.stop_seconds)
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        elif kind == "postgres-restart":
            self.postgres.restart(down=self.args.postgres_down)
        elif kind == "disk-full":
            self.disk.fill()
            time.sleep(self.args.disk_full_seconds)
            self.disk.free()
        self.ended_ms = now_ms()

    def wait_back(self, timeout: float = 300) -> None:
        """Until every part answers twice in a row; how long each did not, from the end."""
        deadline = time.monotonic() + timeout
        good = 0
        while time.monotonic() < deadline and good < 2:
            parts = answering(self.hub, self.postgres)
            for part, ok in parts.items():
                if not ok:
                    self.down[part] = round((now_ms() - self.ended_ms) / 1000, 1)
            good = good + 1 if all(parts.values()) else 0
            time.sleep(0.5)
        self.back_ms = now_ms() if good >= 2 else None

    def run(self, at: float) -> None:
        self.at_s = at
        time.sleep(at)
        try:
            self.hit()
        except Exception as e:  # the round goes on; the report says
            self.error = f"{type(e).__name__}: {e}"
            self.ended_ms = self.ended_ms or now_ms()
        self.wait_back()

    def figures(self) -> dict:
        return {
            "at_ms": self.began_ms,
            "into_arrivals_s": round(self.at_s, 1) if self.at_s is not None else None,
            "lasted_s": round((self.ended_ms - self.began_ms) / 1000, 1),
            "back_after_s": round((self.back_ms - self.ended_ms) / 1000, 1) if self.back_ms else None,
            "parts_down_after_end_s": self.down,
            **({"error": self.error} if hasattr(self, "error") else {}),
        }


# ---- checking a round ----------------------------------------------------------------


def recorded_sessions(database_url: str, names: list[str]) -> dict[str, list[tuple]]:
    """name -> [(started_ms, stopped_ms, source)] of every session recorded for them."""
    from sqlalchemy import text

    engine = make_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT username, started_ms, stopped_ms, source FROM sessions")).all()
    engine.dispose()
    found: dict[str, list[tuple]] = {n: [] for n in names}
    for username, started, stopped, source in rows:
        if username in found:
            found[username].append((started, stopped, source))
    return found


def server_hours_before(sessions: list[tuple], moment_ms: int) -> float:
    """Server hours of `sessions` this month before `moment_ms`: the plain recomputation
    of what the budget counts."""
    moment = datetime.fromtimestamp(moment_ms / 1000, UTC)
    month_start = int(moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)
    total = 0
    for started, stopped, _ in sessions:
        total += max(0, min(stopped or moment_ms, moment_ms) - max(started, month_start))
    return total / HOUR_MS


def check_round(people: list[dict], sessions: dict[str, list[tuple]], spent: set[str], fault: Fault) -> dict:
    """Sessions once and right, budget decisions right, the pages people saw."""
    slack_ms = (RECONCILE_SECONDS + 5) * 1000
    lost, duplicated, wrong_start, late_stops, open_sessions = [], [], [], [], []
    decisions = {"right": 0, "wrong": [], "while_down": 0, "allowed_unchecked_while_down": 0}
    fault_window = (fault.began_ms, (fault.back_ms or now_ms()) + 5000)
    for me in people:
        mine = [s for s in sessions[me["name"]] if me["asked_ms"] and s[0] >= me["asked_ms"] - 60_000]
        if me["ready_ms"]:
            if len(mine) > 1:
                duplicated.append(me["name"])
            if not mine:
                lost.append(me["name"])
            elif not me["asked_ms"] - 2000 <= mine[0][0] <= me["ready_ms"] + 2000:
                wrong_start.append(me["name"])
            if mine and mine[0][1] is None:
                open_sessions.append(me["name"])
            elif (
                mine
                and me["stopped_ms"]
                and not (me["stop_asked_ms"] - 2000 <= mine[0][1] <= me["stopped_ms"] + slack_ms)
            ):
                late_stops.append({"name": me["name"], "late_s": round((mine[0][1] - me["stopped_ms"]) / 1000, 1)})
        elif mine and me["decision"] != "allowed":
            duplicated.append(me["name"])  # recorded without a server that answered
        if me["decision"] is None:
            continue
        past = [s for s in sessions[me["name"]] if s[0] < me["asked_ms"] - 60_000]
        should = "denied" if server_hours_before(past, me["asked_ms"]) >= BUDGET_HOURS else "allowed"
        during = fault_window[0] <= me["decided_ms"] <= fault_window[1]
        if should == me["decision"]:
            decisions["right"] += 1
        elif during and me["decision"] == "allowed":
            decisions["allowed_unchecked_while_down"] += 1  # when_unreadable: allow
        else:
            decisions["wrong"].append({"name": me["name"], "was": me["decision"], "should": should,
                                       "while_down": during})  # fmt: skip
        decisions["while_down"] += during
    pages = [p for me in people for p in me["pages"]]
    by_source: dict[str, int] = {}  # the spawners' events, or the reconciliation's catching up
    for me in people:
        for started, _, source in sessions[me["name"]]:
            if me["asked_ms"] and started >= me["asked_ms"] - 60_000:
                by_source[source] = by_source.get(source, 0) + 1
    by_status: dict[str, int] = {}
    for p in pages:
        by_status[str(p["status"] or p["error"])] = by_status.get(str(p["status"] or p["error"]), 0) + 1
    # the hub's own restart, or its proxy's (restarted by the hub, without routes until the
    # hub adds them again): then, and only then, the proxy's worded "restarting" page
    hub_restart = fault.kind in ("hub-kill", "proxy-kill")

    def excused(p) -> bool:  # the worded restarting page, while the hub or its proxy restarts
        in_fault = fault_window[0] <= p["at_ms"] <= fault_window[1]
        return hub_restart and in_fault and p["status"] == 503 and "restarting" in p["words"]

    bad_pages = [p for p in pages if p["traceback"] or (p["status"] and p["status"] >= 500 and not excused(p))]
    # no answer at all (the proxy down, or replaced by the restarted hub's), and refusals
    # other than the budget's, are not 5xx pages but are counted
    no_answer = [p for p in pages if p["status"] is None]
    other_4xx = [p for p in pages if p["status"] and 400 <= p["status"] < 500]
    return {
        "people": len(people),
        "servers_started": sum(1 for me in people if me["ready_ms"]),
        "refused_by_budget": sum(1 for me in people if me["decision"] == "denied"),
        "spent_people": len(spent),
        "gave_up": [me["name"] for me in people if me["gave_up"]],
        "sessions": {
            "lost": lost,
            "duplicated": duplicated,
            "wrong_start": wrong_start,
            "stop_late": late_stops,
            "left_open": open_sessions,
        },  # fmt: skip
        "budget_decisions": decisions,
        "sessions_recorded_by": by_source,
        "pages_seen": {
            "by_status": by_status,
            "bad": len(bad_pages),
            "bad_examples": bad_pages[:5],
            "no_answer": len(no_answer),
            "other_4xx": len(other_4xx),
            "other_4xx_examples": other_4xx[:3],
            "examples": list({p["words"]: p for p in pages}.values())[:6],
        },  # fmt: skip
        "time_to_server": summary([(me["ready_ms"] - me["asked_ms"]) / 1000 for me in people if me["ready_ms"]]),
    }


def sqlite_intact(database_url: str) -> bool:
    """SQLite's own check of the whole database file: every page, index and constraint."""
    from sqlalchemy import text
    from sqlalchemy.exc import DatabaseError

    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            found = [row[0] for row in connection.execute(text("PRAGMA integrity_check"))]
    except DatabaseError:  # "database disk image is malformed": too damaged to check
        found = []
    finally:
        engine.dispose()
    return found == ["ok"]


def one_round(kind: str, args, work: Path, postgres: PostgresServer, number: int) -> dict:
    """A class start with one fault in it, on a hub of its own."""
    work = work / f"{number:02d}-{kind}"
    work.mkdir(parents=True)
    people = [f"s{number}-{i:03d}" for i in range(args.people)]
    spent = set(people[::3])
    disk = SmallDisk(work / "small-disk") if kind == "disk-full" else None
    database_url = f"sqlite:///{disk.where / 'usage.sqlite'}" if disk else postgres.new_database()
    spend_budgets(database_url, sorted(spent))
    password = secrets.token_urlsafe(12)
    extra = (f"c.Spawner.cmd = {[sys.executable, TINY_SERVER]!r}\nc.ProfileLocalSpawner.cmd = c.Spawner.cmd\n"
             "c.JupyterHub.log_level = 'WARN'\nc.JupyterHub.cleanup_servers = False\n")  # fmt: skip
    hub = LocalHub(write_config(work, people, database_url), work / "hub", password=password,
                   tag="faults-" + secrets.token_hex(4), extra_config=extra)  # fmt: skip
    fault = Fault(kind, hub, postgres if kind != "disk-full" else None, disk, args)
    try:
        hub.start(timeout=120)
        for service in ("usage", "cost", "cost-checks"):
            wait_for_service(hub, service)
        at = random.Random(number + 1000 * args.seed).uniform(0.2, 0.8) * args.window  # into the arrivals
        injector = threading.Thread(target=fault.run, args=(at,))
        injector.start()
        people_seen = in_client_process(a_class, hub.url, password, people, args.window, args.hold, args.give_up)
        injector.join()
        wait_until_stopped(hub, hub.tag, timeout=120)
        time.sleep(RECONCILE_SECONDS + 3)  # a stop the service missed is reconciled by then
        leftovers = {part: len(pids) for part, pids in part_pids(hub).items() if len(pids) != 1}
        sessions = recorded_sessions(database_url, people)
        figures = check_round(people_seen, sessions, spent, fault)
        figures["fault"] = fault.figures()
        figures["processes_not_one_each"] = leftovers
        if disk:  # the database that ran out of room is whole
            figures["database_intact"] = sqlite_intact(database_url)
        return figures
    finally:
        hub.stop()
        if disk:
            disk.unmount()


def met(rounds: dict[str, dict]) -> dict:
    """The issue's targets, per round."""
    result = {}
    for kind, r in rounds.items():
        s = r["sessions"]
        result[kind] = (
            not s["lost"] and not s["duplicated"] and not s["left_open"] and not s["wrong_start"]
            and not s["stop_late"] and not r["budget_decisions"]["wrong"] and r["pages_seen"]["bad"] == 0
            and not r["gave_up"] and r["fault"]["back_after_s"] is not None and r["fault"]["back_after_s"] <= 60
            and not r["processes_not_one_each"] and r.get("database_intact", True)
        )  # fmt: skip
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=200)
    parser.add_argument("--window", type=float, default=120, help="seconds over which they arrive")
    parser.add_argument("--hold", type=float, default=60, help="seconds each uses their server")
    parser.add_argument("--give-up", type=float, default=600, help="seconds a person keeps trying")
    parser.add_argument("--faults", default=",".join(FAULTS), help=f"comma-separated, of: {', '.join(FAULTS)}")
    parser.add_argument("--stop-seconds", type=float, default=30)
    parser.add_argument("--postgres-down", type=float, default=15)
    parser.add_argument("--disk-full-seconds", type=float, default=60)
    parser.add_argument("--seed", type=int, default=0, help="another seed: each fault at another moment")
    args = parser.parse_args(argv)
    kinds = [k for k in args.faults.split(",") if k]
    unknown = set(kinds) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")
    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="twoi2c-faults-"))
    postgres = PostgresServer("faults-postgres-" + secrets.token_hex(4))
    rounds = {}
    try:
        for number, kind in enumerate(kinds):
            rounds[kind] = one_round(kind, args, work, postgres, number)
            print(f"{kind}: {json.dumps(rounds[kind])}", file=sys.stderr, flush=True)
    finally:
        postgres.stop()
    targets = met(rounds)
    print(json.dumps({
        "benchmark": "faults",
        "people": args.people, "window_s": args.window, "hold_s": args.hold, "seed": args.seed,
        "rounds": rounds,
        "targets": {"per_round": targets},
        "targets_met": bool(targets) and all(targets.values()),
        "wall_seconds": round(time.monotonic() - began, 1),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
