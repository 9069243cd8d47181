"""The budget check's memory as today's sessions grow: the `cost-checks` process alone,
asked as the spawners ask it (20 checks a second, 20 at once), while sessions are added
to its database far faster than a class makes them; then as many checks again with the
data unchanged.

The 90-minute soak (soak.py) saw the check's memory still growing at its end (until the
check's connections got a small page cache of their own). This asks why and whether it
stops: each SQLite connection fills a page cache of its own (2 MB by
default) as the pages it reads grow, so a process's SQLite heap is bounded by its
connections (the pool's) times that cache, and the soak's database (10,000 sessions) is
too small to fill them.

    benchmarks/check_memory.py --quiet 60 --growing 420 --per-second 120 --steady 120 --baseline

One JSON object: for each phase, the sessions in the database, the checks answered and
their latency, the process's resident memory (its figure after the first, quiet, phase is
the baseline), and its heap at the phase's end (SQLite's own, C's in use and
freed-but-kept). With --baseline, the same phases first for a check process whose SQLite
connections keep SQLite's default page cache (2 MB each) rather than the check's own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from soak import TRACER, rss_kib
from tornado.httpclient import AsyncHTTPClient

from twoi2c_hub.accounting.db import upgrade
from twoi2c_hub.accounting.models import DAY_MS
from twoi2c_hub.network import free_port
from twoi2c_hub.paths import demo_config

GiB = 2**30
INSERT = (
    "INSERT INTO sessions (username, server_name, profile, choices, cpu_guarantee, cpu_limit, mem_guarantee_bytes,"
    " mem_limit_bytes, gpu_count, started_ms, stopped_ms, duration_ms, source, rolled_up, cost_rolled_up)"
    " VALUES (?, '', 'cpu', '{}', 1.0, 2.0, ?, ?, 0, ?, ?, 60000, 'event', 0, 0)"
)


class CheckProcess:
    """The budget-check service (`--checks-only`) on a fresh database, as the hub starts
    it (two malloc arenas), with the soak's heap counter answering SIGUSR2."""

    def __init__(self, work: Path, people: int, arguments: list[str]):
        self.work, self.people = work, people
        self.database = work / "usage.sqlite"
        url = f"sqlite:///{self.database}"
        upgrade(url)
        config = demo_config()
        config.setdefault("usage", {})["database_url"] = url
        (work / "community.yaml").write_text(yaml.safe_dump(config))
        self.trace = work / "trace"
        self.trace.mkdir()
        (self.trace / "sitecustomize.py").write_text(TRACER)
        port, self.token = free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{port}/services/cost-checks/api/v1/budgets/check"
        environment = {
            **os.environ,
            "TWOI2C_COST_DATABASE_URL": url,
            "TWOI2C_COST_CHECK_TOKEN": self.token,
            "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}",
            "JUPYTERHUB_SERVICE_PREFIX": "/services/cost-checks/",
            "JUPYTERHUB_API_TOKEN": "unused",  # the check asks the hub nothing
            "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api",
            "MALLOC_ARENA_MAX": "2",
            "PYTHONPATH": str(self.trace),
            "TWOI2C_TRACE_MEMORY": str(self.trace),
        }
        command = [sys.executable, "-m", "twoi2c_hub.services.cost", "--config", str(work / "community.yaml")]
        self.process = subprocess.Popen(
            [*command, "--checks-only", *arguments],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.db = sqlite3.connect(self.database)
        self.next_start = int(time.time() * 1000) // DAY_MS * DAY_MS + 60_000

    def add_sessions(self, count: int) -> None:
        """`count` one-minute sessions today, of anyone in the class."""
        rows = []
        for _ in range(count):
            self.next_start += 1
            who = f"person{random.randrange(self.people)}"
            rows.append((who, 2 * GiB, 4 * GiB, self.next_start, self.next_start + 60_000))
        self.db.executemany(INSERT, rows)
        self.db.commit()

    def sessions(self) -> int:
        return self.db.execute("SELECT count(*) FROM sessions").fetchone()[0]

    def rss_mb(self) -> float:
        return rss_kib(self.process.pid) / 1024

    async def heap(self) -> dict:
        """The process's heap figures (soak.TRACER's), counted now."""
        before = set(self.trace.glob("*.objects.json"))
        os.kill(self.process.pid, signal.SIGUSR2)
        for _ in range(100):
            await asyncio.sleep(0.1)
            if new := set(self.trace.glob("*.objects.json")) - before:
                try:
                    heap = json.loads(new.pop().read_text())["heap"]
                except ValueError:  # still being written
                    continue
                return {k: round(v, 2) for k, v in heap.items()}
        raise RuntimeError("the check process wrote no heap figures")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        self.db.close()


async def run(check: CheckProcess, phases: list[tuple[str, float, int]]) -> dict:
    client = AsyncHTTPClient(max_clients=20)
    headers = {"Authorization": f"token {check.token}"}
    server = {"cpu_guarantee": 1.0, "mem_guarantee": 2 * GiB, "gpu_count": 0}

    def body() -> str:
        person = f"person{random.randrange(check.people)}"
        return json.dumps({"username": person, "groups": ["students"], "server": server})

    for _ in range(300):  # until it answers
        try:
            await client.fetch(check.url, method="POST", body=body(), headers=headers)
            break
        except (ConnectionError, OSError):
            await asyncio.sleep(0.1)
    answered, refused, figures = 0, 0, []
    for name, seconds, per_second in phases:
        rss: list[float] = []
        latency: list[float] = []
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            began = time.monotonic()
            if per_second:
                check.add_sessions(per_second)
            asked = (client.fetch(check.url, method="POST", body=body(), headers=headers, raise_error=False)
                     for _ in range(20))  # fmt: skip
            for response in await asyncio.gather(*asked):
                latency.append(response.request_time)
                answered += response.code == 200
                refused += response.code != 200
            rss.append(check.rss_mb())
            await asyncio.sleep(max(0.0, 1 - (time.monotonic() - began)))
        figures.append(
            {
                "phase": name,
                "seconds": seconds,
                "sessions_added_per_second": per_second,
                "sessions": check.sessions(),
                "checks_answered": answered,
                "check_ms_p50": round(1000 * statistics.median(latency), 1),
                "check_ms_p99": round(1000 * statistics.quantiles(latency, n=100)[98], 1),
                "rss_start_mb": round(rss[0], 1),
                "rss_end_mb": round(rss[-1], 1),
                "heap_at_end": await check.heap(),
            }
        )
    return {"phases": figures, "checks_not_answered_200": refused}


def measure(args: argparse.Namespace, arguments: list[str]) -> dict:
    """The phases against a fresh check process started with `arguments`."""
    random.seed(1)
    phases = [("quiet", args.quiet, 0), ("growing", args.growing, args.per_second), ("steady", args.steady, 0)]
    with tempfile.TemporaryDirectory(prefix="twoi2c-check-memory-") as work:
        check = CheckProcess(Path(work), args.people, arguments)
        try:
            figures = asyncio.run(run(check, phases))
        finally:
            check.stop()
    quiet, growing, steady = figures["phases"]
    baseline = quiet["rss_end_mb"]
    figures["baseline_rss_mb"] = baseline
    figures["growth_while_data_grows_mb"] = round(growing["rss_end_mb"] - baseline, 1)
    figures["growth_with_data_unchanged_mb"] = round(steady["rss_end_mb"] - steady["rss_start_mb"], 1)
    figures["sqlite_heap_mb"] = [p["heap_at_end"]["sqlite_mb"] for p in figures["phases"]]
    figures["targets_met"] = {
        "every_check_answered": figures["checks_not_answered_200"] == 0,
        # with the data unchanged, as many checks again add (almost) nothing: no leak per check
        "flat_with_data_unchanged": figures["growth_with_data_unchanged_mb"] <= 0.01 * steady["rss_end_mb"],
    }
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=300)
    parser.add_argument("--quiet", type=float, default=60, help="seconds of checks before sessions are added")
    parser.add_argument("--growing", type=float, default=420, help="seconds of checks while sessions are added")
    parser.add_argument("--per-second", type=int, default=120, help="sessions added a second while growing")
    parser.add_argument("--steady", type=float, default=120, help="seconds of checks after, the data unchanged")
    parser.add_argument("--baseline", action="store_true", help="first the same with SQLite's default page cache")
    args = parser.parse_args(argv)
    if args.baseline:
        default_cache = measure(args, ["--BudgetCheckService.sqlite_page_cache_kib=0"])
    figures = measure(args, [])
    if args.baseline:
        figures["sqlite_default_cache"] = default_cache
        figures["targets_met"]["smaller_than_with_sqlite_default_cache"] = (
            figures["growth_while_data_grows_mb"] < default_cache["growth_while_data_grows_mb"]
        )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
