"""A class starts at once: N people log in and start servers within T seconds, against
our hub and against plain JupyterHub, in the same run.

Each person acts as a browser does: the login form with its cookies and XSRF token, the
spawn page, the form submitted with a profile (plain JupyterHub: the spawn page starts
the server itself), the progress stream followed until the server is ready, the server
answering through the proxy; then the server is stopped. The servers are real processes
started by the spawner, but minimal (tiny_server.py), so that hundreds fit on two cores;
the hub, the proxy and our services are the real ones.

Ours: the demo-like community hub (profiles, usage accounting, prices and a budget
checked at every start). Plain: JupyterHub with the same spawner base
(LocalProcessSpawner as the hub's user), the same proxy and servers, DummyAuthenticator,
no profiles, no accounting, no budgets.

Reports, for both: login latency and time-to-server p50/p95/p99, errors of any kind, the
hub's CPU seconds and peak RSS; for ours also the usage service's CPU and peak RSS,
sessions recorded (must equal servers started, none duplicated) and the spawn path's
overhead per person. Prints one JSON object. `--people 300 --window 120` by default.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from common import wait_for_service  # noqa: E402

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


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


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

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.sample()
            await asyncio.sleep(0.5)

    def figures(self) -> dict:
        self.sample()
        return {
            name: {
                "cpu_seconds": round(self._cpu(pids) - self.cpu_start[name], 2),
                "peak_rss_mb": round(self.peak_kb[name] / 1024, 1),
            }  # fmt: skip
            for name, pids in self.pids.items()
        }


async def person(hub_url: str, name: str, password: str, delay: float, form: dict | None, out: dict) -> None:
    """One student: log in, start a server, reach it, stop it."""
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
            if form is not None:
                async with http.post(f"{hub_url}/hub/spawn?_xsrf={xsrf}", data={**form, "_xsrf": xsrf}) as r:
                    await r.read()
                    if r.status != 200:  # the spawn-pending page, after the redirect
                        raise RuntimeError(f"spawn form: {r.status}")
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
            async with http.get(f"{hub_url}/user/{name}/") as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"server: {r.status}")
            out["server"].append(time.perf_counter() - spawning)
            out["started"].append(name)
            headers = {"X-XSRFToken": xsrf}
            async with http.delete(f"{hub_url}/hub/api/users/{name}/server", headers=headers) as r:
                if r.status not in (202, 204):
                    raise RuntimeError(f"stop: {r.status}")
        except Exception as e:  # every kind of error counts
            out["errors"].append(f"{name}: {type(e).__name__}: {e}"[:300])


async def class_starts(hub_url: str, password: str, people: list[str], window: float, form: dict | None) -> dict:
    out: dict = {"login": [], "server": [], "started": [], "errors": []}
    rng = random.Random(7)
    await asyncio.gather(*(person(hub_url, n, password, rng.uniform(0, window), form, out) for n in people))
    return out


async def measured(hub: LocalHub, processes: dict[str, list[int]], people, window, form) -> tuple[dict, dict]:
    watch = Watch(processes)
    stop = asyncio.Event()
    sampler = asyncio.create_task(watch.run(stop))
    began = time.perf_counter()
    result = await class_starts(hub.url, hub.password, people, window, form)
    result["wall_seconds"] = time.perf_counter() - began
    stop.set()
    await sampler
    return result, watch.figures()


def wait_until_stopped(hub: LocalHub, tag: str, timeout: float = 300) -> None:
    """Every server process gone (they are the tagged processes not the hub's own)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not [p for p in tagged_processes(tag) if "tiny_server" in Path(f"/proc/{p}/cmdline").read_text("latin-1")]:
            return
        time.sleep(1)


def sessions_recorded(database: Path, people: list[str], timeout: float = 120) -> dict:
    import sqlite3

    deadline = time.monotonic() + timeout
    while True:
        connection = sqlite3.connect(database)
        rows = connection.execute(
            "SELECT username, started_ms, stopped_ms FROM sessions WHERE username LIKE 'student-%'"
        ).fetchall()
        connection.close()
        stopped = sum(1 for r in rows if r[2] is not None)
        if stopped >= len(people) or time.monotonic() > deadline:
            break
        time.sleep(1)
    per_person: dict[str, int] = {}
    for username, _, _ in rows:
        per_person[username] = per_person.get(username, 0) + 1
    return {"recorded": len(rows), "stopped": stopped, "duplicated": sum(n - 1 for n in per_person.values() if n > 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=300)
    parser.add_argument("--window", type=float, default=120, help="seconds over which they arrive")
    args = parser.parse_args(argv)
    people = [f"student-{i:04d}" for i in range(args.people)]
    password = secrets.token_urlsafe(12)
    work = Path(tempfile.mkdtemp(prefix="twoi2c-class-start-"))
    figures: dict = {"people": args.people, "window_seconds": args.window}
    try:
        # ours: the demo community's profiles and usage accounting, a budget checked at every start
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
        for name, hub, form in (("plain", plain, None), ("ours", ours, {"profile": "cpu"})):
            hub.start(timeout=120)
            try:
                processes = {"hub": [hub.process.pid]}
                if name == "ours":
                    wait_for_service(hub, "usage")
                    processes["usage_service"] = [
                        p for p in tagged_processes(hub.tag)
                        if "twoi2c_hub.services.usage" in Path(f"/proc/{p}/cmdline").read_text("latin-1")
                    ]  # fmt: skip
                result, usage = asyncio.run(measured(hub, processes, people, args.window, form))
                wait_until_stopped(hub, hub.tag)
                figures[name] = {
                    "login": summary(result["login"]),
                    "time_to_server": summary(result["server"]),
                    "mean_time_to_server_s": round(statistics.fmean(result["server"]), 3) if result["server"] else None,
                    "servers_started": len(result["started"]),
                    "errors": len(result["errors"]),
                    "error_examples": result["errors"][:5],
                    "wall_seconds": round(result["wall_seconds"], 1),
                    **{k: v for k, v in usage.items()},
                }
                if name == "ours":
                    figures[name]["sessions"] = sessions_recorded(work / "usage.sqlite", people)
            finally:
                hub.stop()
        ours_f, plain_f = figures["ours"], figures["plain"]
        if ours_f["mean_time_to_server_s"] and plain_f["mean_time_to_server_s"]:
            figures["spawn_path_overhead_per_person_s"] = round(
                ours_f["mean_time_to_server_s"] - plain_f["mean_time_to_server_s"], 3
            )
        p99 = (ours_f["time_to_server"]["p99_s"] or 0) / max(plain_f["time_to_server"]["p99_s"] or 1e-9, 1e-9)
        figures["time_to_server_p99_ratio"] = round(p99, 2)
        figures["hub_peak_rss_ratio"] = round(ours_f["hub"]["peak_rss_mb"] / plain_f["hub"]["peak_rss_mb"], 2)
        sessions = ours_f["sessions"]
        figures["targets_met"] = {
            "no_errors": ours_f["errors"] == 0,
            "every_session_recorded_once": sessions["recorded"] == ours_f["servers_started"]
            and sessions["duplicated"] == 0,
            "time_to_server_p99_within_1.2x": figures["time_to_server_p99_ratio"] <= 1.2,
            "hub_peak_rss_within_1.2x": figures["hub_peak_rss_ratio"] <= 1.2,
        }
        print(json.dumps(figures))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
