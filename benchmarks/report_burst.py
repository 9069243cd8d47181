"""A burst of heavy usage reports, and what it does to the hub and the service's /health.

Generates SESSIONS sessions (default 1,000,000 over 365 days, as `usage_report.py` does),
starts a real hub with the usage service on that database, then:

1. baseline: times the hub's `/hub/api/` and the service's `/health` with nothing else
   going on;
2. burst: REQUESTS heavy reports (ten years by group on the admin page, ten years on a
   person's page, a year of daily allocation steps), CONCURRENCY at once, each worker a
   different reader, while the same two probes keep running.

Prints one JSON object: the probes' p50/p99 in both phases, the hub's burst/baseline
p99 ratio (target <= 1.5), /health p99 during the burst (target <= 200 ms), the burst's
statuses (target: no 5xx; 429 is the per-person limit), its duration, and the service's
resident and peak memory. `--sessions 20000 --requests 40` for a quick run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import secrets
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from common import as_remote_client, percentile, wait_for_service  # noqa: E402
from usage_report import generate  # noqa: E402  (the same generated history)

from twoi2c_hub.accounting.db import make_engine, session_maker, upgrade  # noqa: E402
from twoi2c_hub.accounting.models import DAY_MS  # noqa: E402
from twoi2c_hub.accounting.rollups import roll_up  # noqa: E402
from twoi2c_hub.localhub import LocalHub, tagged_processes  # noqa: E402
from twoi2c_hub.paths import demo_config  # noqa: E402

HEAVY = [
    ("admin", {"start": "2016-11-28", "end": "2026-11-26", "aggregate": "group"}),
    ("", {"start": "2016-11-28", "end": "2026-11-26"}),
    ("api/v1/allocation", {"window": "365d", "aggregate": "user", "step": "1d"}),
]


def summary(values: list[float]) -> dict:
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 0.5), 1) if values else None,
        "p99_ms": round(percentile(values, 0.99), 1) if values else None,
    }


class Probe(threading.Thread):
    """GETs a URL over and over until stopped; keeps every latency and status."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.latencies_ms: list[float] = []
        self.statuses: Counter = Counter()
        self.stopping = threading.Event()

    def run(self):
        session = requests.Session()
        while not self.stopping.is_set():
            began = time.perf_counter()
            try:
                status = session.get(self.url, timeout=60).status_code
            except requests.RequestException as e:
                status = type(e).__name__
            self.latencies_ms.append((time.perf_counter() - began) * 1000)
            self.statuses[status] += 1
            time.sleep(0.05)

    def stop(self):
        self.stopping.set()
        self.join()


def probe_for(urls: list[str], seconds: float) -> list[Probe]:
    probes = [Probe(u) for u in urls]
    for p in probes:
        p.start()
    time.sleep(seconds)
    for p in probes:
        p.stop()
    return probes


def burst(service: str, readers: list[str], requests_total: int, concurrency: int) -> tuple[Counter, list[float]]:
    """REQUESTS heavy reports, CONCURRENCY at once, each worker another reader.

    Run as a remote client would be (`as_remote_client`)."""
    as_remote_client()
    statuses: Counter = Counter()
    latencies: list[float] = []

    def worker(index: int):
        session = requests.Session()
        session.headers["Authorization"] = f"token {readers[index]}"
        for n in range(index, requests_total, concurrency):
            path, params = HEAVY[n % len(HEAVY)]
            began = time.perf_counter()
            try:
                status = session.get(service + path, params=params, timeout=300).status_code
            except requests.RequestException as e:
                status = type(e).__name__
            latencies.append((time.perf_counter() - began) * 1000)
            statuses[status] += 1

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(worker, range(concurrency)))
    return statuses, latencies


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--baseline-seconds", type=float, default=15)
    parser.add_argument(
        "--database", help="a history kept by an earlier run (--keep; its 'database' figure) to use again, unchanged"
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated history for --database")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="twoi2c-burst-"))
    database = work / "usage.sqlite"
    url = f"sqlite:///{database}"
    now_ms = int(time.time() * 1000) // DAY_MS * DAY_MS
    figures: dict = {"sessions": args.sessions, "requests": args.requests, "concurrency": args.concurrency}

    if args.database:
        shutil.copyfile(args.database, database)
        figures["sessions"] = sqlite3.connect(database).execute("select count(*) from sessions").fetchone()[0]
    else:
        upgrade(url)
        generate(database, args.sessions, args.users, 50, 12, args.days, now_ms)
        engine = make_engine(url)
        with session_maker(engine)() as db:
            roll_up(db, now_ms)
        engine.dispose()
    if args.keep:
        kept = Path(tempfile.gettempdir()) / f"twoi2c-burst-history-{figures['sessions']}.sqlite"
        shutil.copyfile(database, kept)
        figures["database"] = str(kept)

    config = demo_config()
    config["usage"] = {"database_url": url, "reconcile_interval": 30}
    config["culling"] = {"enabled": False}
    (work / "community.yaml").write_text(yaml.safe_dump(config))
    # the readers are people (hub users with a role that may read everyone's usage) with
    # tokens the hub generated, as a person's are: a token written in the config is hashed
    # with 16,384 rounds and would make each reader's first request cost the hub ~20 ms
    admin_token = secrets.token_hex(32)
    reader_names = [f"reader{i}" for i in range(args.concurrency)]
    extra = f"""
c.JupyterHub.services.append({{"name": "burst-admin", "api_token": {admin_token!r}}})
c.JupyterHub.load_roles.append({{"name": "burst-admin", "services": ["burst-admin"],
    "scopes": ["admin:users", "tokens"]}})
c.JupyterHub.load_roles.append({{"name": "burst-readers", "users": {reader_names!r},
    "scopes": ["self", "custom:usage:read-all", "access:services!service=usage"]}})
"""
    hub = LocalHub(work / "community.yaml", work / "hub", extra_config=extra)
    hub.start(timeout=120)
    try:
        service = f"{hub.url}/services/usage/"
        wait_for_service(hub, "usage", timeout=60)
        # the third probe asks the hub itself, not through the proxy: where the time goes
        hub_port = re.search(r"c.JupyterHub.hub_port = (\d+)", (work / "hub" / "jupyterhub_config.py").read_text())
        probes = [f"{hub.url}/hub/api/", service + "health", f"http://127.0.0.1:{hub_port.group(1)}/hub/api/"]
        readers = [
            requests.post(
                f"{hub.url}/hub/api/users/{name}/tokens",
                headers={"Authorization": f"token {admin_token}"},
                json={"note": "report burst"},
                timeout=30,
            ).json()["token"]
            for name in reader_names
        ]

        baseline = probe_for(probes, args.baseline_seconds)
        figures["baseline_hub_api"] = summary(baseline[0].latencies_ms)
        figures["baseline_health"] = summary(baseline[1].latencies_ms)
        figures["baseline_hub_api_direct"] = summary(baseline[2].latencies_ms)

        during = [Probe(u) for u in probes]
        for p in during:
            p.start()
        began = time.perf_counter()
        # the attackers' client in a process of its own, at the lowest priority: on one
        # machine it would otherwise take CPU from the hub that a remote attacker could not
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            statuses, latencies = pool.apply(burst, (service, readers, args.requests, args.concurrency))
        figures["burst_seconds"] = round(time.perf_counter() - began, 1)
        for p in during:
            p.stop()

        figures["burst_statuses"] = {str(k): v for k, v in sorted(statuses.items(), key=str)}
        figures["burst_report"] = summary(latencies)
        figures["burst_hub_api"] = summary(during[0].latencies_ms)
        figures["burst_health"] = summary(during[1].latencies_ms)
        figures["burst_hub_api_direct"] = summary(during[2].latencies_ms)
        figures["probe_statuses"] = {
            "hub_api": {str(k): v for k, v in during[0].statuses.items()},
            "health": {str(k): v for k, v in during[1].statuses.items()},
        }
        figures["hub_api_p99_ratio"] = round(
            figures["burst_hub_api"]["p99_ms"] / figures["baseline_hub_api"]["p99_ms"], 2
        )
        figures["server_errors"] = sum(v for k, v in statuses.items() if not (isinstance(k, int) and k < 500)) + sum(
            v for p in during for k, v in p.statuses.items() if not (isinstance(k, int) and k < 500)
        )

        pid = next(
            p
            for p in tagged_processes(hub.tag)
            if b"twoi2c_hub.services.usage" in Path(f"/proc/{p}/cmdline").read_bytes()
        )
        status = Path(f"/proc/{pid}/status").read_text()
        figures["service_rss_mb"] = round(int(status.split("VmRSS:")[1].split()[0]) / 1024, 1)
        figures["service_peak_rss_mb"] = round(int(status.split("VmHWM:")[1].split()[0]) / 1024, 1)
        figures["targets_met"] = {
            "hub_api_p99_within_1.5x": figures["hub_api_p99_ratio"] <= 1.5,
            "health_p99_under_200ms": figures["burst_health"]["p99_ms"] <= 200,
            "no_5xx": figures["server_errors"] == 0,
        }
    finally:
        hub.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
