"""A class starts at once: N people log in and start servers within T seconds, against
our hub and against plain JupyterHub, in the same run.

Each person acts as a browser does: the login form with its cookies and XSRF token, the
spawn page, 1 to 4 s to choose (`--think`), the form submitted with a profile (plain
JupyterHub: opening the spawn page starts the server), the progress stream followed until
the server is ready, the server answering through the proxy; then the server is stopped.
The servers are real processes started by the spawner, but minimal (tiny_server.py), so
that hundreds fit on two cores; the hub, the proxy and our services are the real ones.
The load client runs in a process of its own at the lowest priority, as a client on
other machines would take no CPU from the hub.

Ours: the demo-like community hub (profiles, usage accounting, prices and a budget
checked at every start). Plain: JupyterHub with the same spawner base
(LocalProcessSpawner as the hub's user), the same proxy and servers, DummyAuthenticator,
no profiles, no accounting, no budgets. `--rounds` class starts on each, alternating,
each hub started afresh and alone on the machine; the figures pool the rounds.

Reports, for both: login latency; time to server (from asking for it: pressing Start on
our form, opening the spawn page on plain JupyterHub) and from opening the spawn page
(our form's page included, the thinking not), p50/p95/p99, per round too; each step's
time; errors of any kind; the hub's CPU seconds and peak RSS; for ours also the usage and
cost services' CPU and peak RSS, sessions recorded (must equal servers started, none
duplicated) and the spawn path's overhead per person. Prints one JSON object.
`--people 300 --window 120 --rounds 3` by default. `--soak-minutes 30`: see soak.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from common import as_remote_client, percentile, wait_for_service  # noqa: E402

from twoi2c_hub.localhub import LocalHub, tagged_processes  # noqa: E402
from twoi2c_hub.paths import demo_config  # noqa: E402

TINY_SERVER = str(Path(__file__).with_name("tiny_server.py"))


class PlainHub(LocalHub):
    """Plain JupyterHub: the same hub runner, a config of JupyterHub's own settings only."""

    def write_config(self) -> Path:
        path = super().write_config()
        text = path.read_text()
        start = text.index("from twoi2c_hub import configure")
        end = text.index("c.JupyterHub.bind_url")
        text = text[:start] + text[end:]
        text = text.replace("c.ProfileLocalSpawner.system_users = False\n", "")
        text = text.replace("c.ProfileLocalSpawner.", "c.SimpleLocalProcessSpawner.")
        path.write_text(text)
        return path


def summary(values: list[float]) -> dict:
    return {f"p{int(q * 100)}_s": round(percentile(values, q), 3) if values else None for q in (0.5, 0.95, 0.99)}


class Watch:
    """CPU seconds and peak resident memory of processes, sampled while the run goes."""

    def __init__(self, pids: dict[str, list[int]]):
        self.pids = pids
        self.peak_kb = dict.fromkeys(pids, 0)
        self.cpu_start = {name: self._cpu(p) for name, p in pids.items()}

    @staticmethod
    def _cpu(pids: list[int]) -> float:
        total = 0.0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks
            except (OSError, IndexError):
                pass
        return total

    def sample(self) -> None:
        for name, pids in self.pids.items():
            for pid in pids:
                try:
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            self.peak_kb[name] = max(self.peak_kb[name], int(line.split()[1]))
                except OSError:
                    pass

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(0.5):
            self.sample()

    def figures(self) -> dict:
        self.sample()
        return {
            name: {
                "cpu_seconds": round(self._cpu(pids) - self.cpu_start[name], 2),
                "peak_rss_mb": round(self.peak_kb[name] / 1024, 1),
            }  # fmt: skip
            for name, pids in self.pids.items()
        }


async def person(
    hub_url: str,
    name: str,
    password: str,
    delay: float,
    form: dict | None,
    out: dict,
    hold: float = 0,
    think: float = 0,
) -> None:
    """One student: log in, open the spawn page, (take `think` seconds to choose, then)
    press Start, reach the server, (work `hold` seconds in it, then) stop it (and log out).

    Time to server: from asking for the server (plain JupyterHub: opening the spawn page,
    which starts it; ours: pressing Start on the form) until it answers through the
    proxy. From the spawn page: from opening it, the thinking left out."""
    await asyncio.sleep(delay)
    jar = aiohttp.CookieJar(unsafe=True)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(cookie_jar=jar, timeout=timeout) as http:
        try:
            began = time.perf_counter()
            async with http.get(f"{hub_url}/hub/login") as r:
                await r.read()
            xsrf = next(c.value for c in jar if c.key == "_xsrf")
            data = {"username": name, "password": password, "_xsrf": xsrf}
            async with http.post(f"{hub_url}/hub/login?next=", data=data, allow_redirects=False) as r:
                await r.read()
                if r.status != 302:
                    raise RuntimeError(f"login: {r.status}")
            out["login"].append(time.perf_counter() - began)
            xsrf = next(c.value for c in jar if c.key == "_xsrf")
            spawning = time.perf_counter()
            async with http.get(f"{hub_url}/hub/spawn", allow_redirects=form is None) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"spawn page: {r.status}")
            out["phases"]["spawn_page"].append(time.perf_counter() - spawning)
            asked = spawning  # plain JupyterHub: opening the spawn page asks for the server
            if form is not None:
                await asyncio.sleep(think)  # reading the cards, choosing
                asked = submitting = time.perf_counter()  # ours: pressing Start
                async with http.post(f"{hub_url}/hub/spawn?_xsrf={xsrf}", data={**form, "_xsrf": xsrf}) as r:
                    await r.read()
                    if r.status != 200:  # the spawn-pending page, after the redirect
                        raise RuntimeError(f"spawn form: {r.status}")
                out["phases"]["form_submitted"].append(time.perf_counter() - submitting)
            following = time.perf_counter()
            progress = f"{hub_url}/hub/api/users/{name}/server/progress?_xsrf={xsrf}"
            async with http.get(progress) as r:
                if r.status != 200:
                    raise RuntimeError(f"progress: {r.status}")
                async for line in r.content:
                    if line.startswith(b"data:"):
                        event = json.loads(line[5:])
                        if event.get("ready"):
                            break
                        if event.get("failed"):
                            raise RuntimeError(f"spawn failed: {event.get('message')}")
            out["phases"]["progress_to_ready"].append(time.perf_counter() - following)
            async with http.get(f"{hub_url}/user/{name}/") as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"server: {r.status}")
            ready = time.perf_counter()
            out["server"].append(ready - asked)
            out["from_spawn_page"].append(ready - spawning - (think if form is not None else 0))
            out["started"].append(name)
            working_until = time.monotonic() + hold
            while time.monotonic() < working_until:  # a request now and then, as a notebook's
                await asyncio.sleep(min(60, working_until - time.monotonic()))
                async with http.get(f"{hub_url}/user/{name}/api/status") as r:
                    await r.read()
            headers = {"X-XSRFToken": xsrf}
            async with http.delete(f"{hub_url}/hub/api/users/{name}/server", headers=headers) as r:
                if r.status not in (202, 204):
                    raise RuntimeError(f"stop: {r.status}")
            if hold:
                async with http.get(f"{hub_url}/hub/logout") as r:
                    await r.read()
        except Exception as e:  # every kind of error counts
            out["errors"].append(f"{name}: {type(e).__name__}: {e}"[:300])


def empty_results() -> dict:
    return {"login": [], "server": [], "from_spawn_page": [], "started": [], "errors": [], "phases": defaultdict(list)}


async def class_starts(
    hub_url: str, password: str, people: list[str], window: float, form: dict | None, think: tuple[float, float]
) -> dict:
    """Everyone arrives within `window` seconds; on a form, each thinks `think` seconds."""
    out = empty_results()
    rng = random.Random(7)
    await asyncio.gather(
        *(person(hub_url, n, password, rng.uniform(0, window), form, out, think=rng.uniform(*think)) for n in people)
    )
    out["phases"] = dict(out["phases"])
    return out


def as_client(work, *args) -> dict:
    """Run `work(*args)` (a coroutine function) as a remote client would: at the lowest
    priority, in a session of its own (see common.as_remote_client)."""
    as_remote_client()
    return asyncio.run(work(*args))


def in_client_process(work, *args) -> dict:
    """`work(*args)` in a separate process: the load client takes no CPU from the hub
    that a client on another machine would not take."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        return pool.submit(as_client, work, *args).result()


def measured(hub: LocalHub, processes: dict[str, list[int]], people, window, form, think) -> tuple[dict, dict]:
    """One class start against `hub`, its processes watched meanwhile."""
    watch = Watch(processes)
    stop = threading.Event()
    sampler = threading.Thread(target=watch.run, args=(stop,))
    sampler.start()
    began = time.perf_counter()
    try:
        result = in_client_process(class_starts, hub.url, hub.password, people, window, form, think)
    finally:
        stop.set()
        sampler.join()
    result["wall_seconds"] = time.perf_counter() - began
    return result, watch.figures()


def wait_until_stopped(hub: LocalHub, tag: str, timeout: float = 300) -> None:
    """Every server process gone (they are the tagged processes not the hub's own)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not [p for p in tagged_processes(tag) if "tiny_server" in Path(f"/proc/{p}/cmdline").read_text("latin-1")]:
            return
        time.sleep(1)


def sessions_recorded(database: Path, expected: int, timeout: float = 120) -> dict:
    """The sessions the usage service recorded, once `expected` of them are stopped (or
    at the timeout): how many, how many stopped, how many recorded twice."""
    import sqlite3

    deadline = time.monotonic() + timeout
    while True:
        connection = sqlite3.connect(database)
        recorded, stopped, distinct = connection.execute(
            "SELECT count(*), count(stopped_ms), count(DISTINCT username || '/' || server_name || '/' || started_ms) "
            "FROM sessions WHERE username LIKE 'student-%'"
        ).fetchone()
        connection.close()
        if stopped >= expected or time.monotonic() > deadline:
            return {"recorded": recorded, "stopped": stopped, "duplicated": recorded - distinct}
        time.sleep(1)


def service_processes(hub: LocalHub, services: tuple[str, ...]) -> dict[str, list[int]]:
    """The hub's process and each service's, by name. The cost service's spawn-time check
    is a process of its own (`cost_checks_service`): summed with the cost service's, as
    they were until 2026-12-04, the two made the "cost service" 320-346 MB through the
    soaks, when each was 165-180 MB."""
    processes = {"hub": [hub.process.pid]}
    for service in services:
        wait_for_service(hub, service)
        for pid in tagged_processes(hub.tag):
            command = Path(f"/proc/{pid}/cmdline").read_text("latin-1").split("\0")
            if f"twoi2c_hub.services.{service}" not in command:
                continue
            name = f"{service}_checks_service" if "--checks-only" in command else f"{service}_service"
            processes.setdefault(name, []).append(pid)
    return processes


class Runs:
    """What the rounds against one hub measured, pooled."""

    def __init__(self):
        self.login, self.server, self.from_spawn_page, self.errors, self.started = [], [], [], [], 0
        self.phases: dict[str, list[float]] = defaultdict(list)
        self.processes: dict[str, dict] = {}
        self.rounds: list[dict] = []
        self.wall = 0.0

    def add(self, result: dict, usage: dict) -> None:
        self.login += result["login"]
        self.server += result["server"]
        self.from_spawn_page += result["from_spawn_page"]
        self.errors += result["errors"]
        self.started += len(result["started"])
        self.wall += result["wall_seconds"]
        for phase, values in result["phases"].items():
            self.phases[phase] += values
        for name, figures in usage.items():
            mine = self.processes.setdefault(name, {"cpu_seconds": 0.0, "peak_rss_mb": 0.0})
            mine["cpu_seconds"] = round(mine["cpu_seconds"] + figures["cpu_seconds"], 2)
            mine["peak_rss_mb"] = max(mine["peak_rss_mb"], figures["peak_rss_mb"])
        self.rounds.append(
            {
                "time_to_server": summary(result["server"]),
                "from_spawn_page": summary(result["from_spawn_page"]),
                "errors": len(result["errors"]),
            }
        )

    def figures(self) -> dict:
        return {
            "login": summary(self.login),
            "time_to_server": summary(self.server),
            "from_spawn_page": summary(self.from_spawn_page),
            "phases": {k: summary(v) for k, v in self.phases.items()},
            "mean_time_to_server_s": round(statistics.fmean(self.server), 3) if self.server else None,
            "mean_from_spawn_page_s": round(statistics.fmean(self.from_spawn_page), 3) if self.server else None,
            "servers_started": self.started,
            "errors": len(self.errors),
            "error_examples": self.errors[:5],
            "wall_seconds": round(self.wall, 1),
            **self.processes,
            "rounds": self.rounds,
        }


def ratio(ours: float | None, plain: float | None) -> float | None:
    return round(ours / plain, 2) if ours is not None and plain else None


def hubs(work: Path, people: list[str], password: str) -> dict[str, tuple[LocalHub, dict | None]]:
    """Ours (the demo community's profiles, usage accounting, a budget checked at every
    start) and plain JupyterHub, each with the form its people submit (None: none)."""
    config = demo_config()
    config["auth"] = {"provider": "demo", "users": {n: {"groups": ["students"]} for n in people}}
    config["culling"] = {"enabled": False}
    config["usage"] = {"database_url": f"sqlite:///{work / 'usage.sqlite'}", "reconcile_interval": 30}
    config["spawner"]["local"] = {"apply_memory_limit": False, "apply_cpu_limit": False}
    config["budgets"] = {"budgets": [{"name": "class", "applies_to": "group", "names": ["students"],
                                      "limit": 1000, "period": "month"}]}  # fmt: skip
    path = work / "community.yaml"
    path.write_text(yaml.safe_dump(config))
    tiny = f"c.Spawner.cmd = {[sys.executable, TINY_SERVER]!r}\nc.JupyterHub.log_level = 'WARN'\n"
    ours = LocalHub(path, work / "ours", password=password, tag="class-start-ours-" + secrets.token_hex(4),
                    extra_config=tiny + "c.ProfileLocalSpawner.cmd = c.Spawner.cmd\n")  # fmt: skip
    plain_config = (
        f"c.JupyterHub.authenticator_class = 'dummy'\nc.DummyAuthenticator.password = {password!r}\n"
        "c.JupyterHub.spawner_class = 'simple'\n"
    )
    plain = PlainHub(path, work / "plain", password=password, tag="class-start-plain-" + secrets.token_hex(4),
                     extra_config=tiny + plain_config)  # fmt: skip
    return {"plain": (plain, None), "ours": (ours, {"profile": "cpu"})}


def class_start_rounds(
    work: Path, people: list[str], password: str, window: float, rounds: int, think: tuple[float, float]
) -> dict:
    """`rounds` class starts on each hub, alternating (plain first in odd rounds, ours
    first in even ones), each hub started afresh for its round and alone on the machine."""
    runs = {"plain": Runs(), "ours": Runs()}
    sessions = None
    for number in range(rounds):
        order = ("plain", "ours") if number % 2 == 0 else ("ours", "plain")
        for name in order:
            hub, form = hubs(work, people, password)[name]
            hub.start(timeout=120)
            try:
                processes = service_processes(hub, ("usage", "cost") if name == "ours" else ())
                result, usage = measured(hub, processes, people, window, form, think)
                wait_until_stopped(hub, hub.tag)
                runs[name].add(result, usage)
                if name == "ours":
                    sessions = sessions_recorded(work / "usage.sqlite", runs["ours"].started)
            finally:
                hub.stop()
    figures = {name: run.figures() for name, run in runs.items()}
    figures["ours"]["sessions"] = sessions
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=300)
    parser.add_argument("--window", type=float, default=120, help="seconds over which they arrive")
    parser.add_argument("--rounds", type=int, default=3, help="class starts on each hub, alternating")
    parser.add_argument(
        "--think", type=float, nargs=2, default=(1.0, 4.0), metavar=("MIN", "MAX"),
        help="seconds a person takes on our spawn form before pressing Start (uniform)",
    )  # fmt: skip
    parser.add_argument(
        "--within", type=float, default=1.2,
        help="targets: our time to server p99 and hub peak RSS at most this times plain JupyterHub's"
        " (1.1 for a class of 1,000)",
    )  # fmt: skip
    parser.add_argument(
        "--soak-minutes", type=float, help="instead: our hub for this long, people coming and going (soak mode)"
    )
    parser.add_argument(
        "--trace-memory", choices=("objects", "allocations"), default="",
        help="soak: count the live objects of the hub and the services by type after the warm-up and at the end"
        " (objects); trace their Python allocations in between too (allocations; slows them)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    people = [f"student-{i:04d}" for i in range(args.people)]
    password = secrets.token_urlsafe(12)
    work = Path(tempfile.mkdtemp(prefix="twoi2c-class-start-"))
    figures: dict = {
        "people": args.people,
        "window_seconds": args.window,
        "rounds": args.rounds,
        "think_seconds": list(args.think),
    }
    try:
        if args.soak_minutes:
            from soak import soak

            print(json.dumps({"soak": soak(work, people, password, args.soak_minutes, args.trace_memory)}))
            return 0
        figures.update(class_start_rounds(work, people, password, args.window, args.rounds, tuple(args.think)))
        ours, plain = figures["ours"], figures["plain"]
        if ours["mean_from_spawn_page_s"] and plain["mean_from_spawn_page_s"]:
            # all our hub adds between opening the spawn page and a server that answers
            # (the form's page included, the person's thinking not)
            figures["spawn_path_overhead_per_person_s"] = round(
                ours["mean_from_spawn_page_s"] - plain["mean_from_spawn_page_s"], 3
            )
        figures["time_to_server_p99_ratio"] = ratio(ours["time_to_server"]["p99_s"], plain["time_to_server"]["p99_s"])
        figures["time_to_server_p99_ratio_by_round"] = [
            ratio(o["time_to_server"]["p99_s"], p["time_to_server"]["p99_s"])
            for o, p in zip(ours["rounds"], plain["rounds"], strict=True)
        ]
        figures["from_spawn_page_p99_ratio"] = ratio(
            ours["from_spawn_page"]["p99_s"], plain["from_spawn_page"]["p99_s"]
        )
        figures["hub_peak_rss_ratio"] = ratio(ours["hub"]["peak_rss_mb"], plain["hub"]["peak_rss_mb"])
        sessions = ours["sessions"]
        figures["targets_met"] = {
            "no_errors": ours["errors"] == 0,
            "every_session_recorded_once": sessions["recorded"] == ours["servers_started"]
            and sessions["duplicated"] == 0,
            f"time_to_server_p99_within_{args.within}x": (figures["time_to_server_p99_ratio"] or 99) <= args.within,
            f"hub_peak_rss_within_{args.within}x": (figures["hub_peak_rss_ratio"] or 99) <= args.within,
            # each service process: usage, cost, and the cost service's spawn-time check
            "services_peak_rss_at_most_200mb": all(
                ours[name]["peak_rss_mb"] <= 200 for name in ("usage_service", "cost_service", "cost_checks_service")
            ),
        }
        print(json.dumps(figures))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
