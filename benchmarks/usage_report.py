"""Usage reports at scale, through the running service's API, against a plain SQL baseline.

Generates SESSIONS sessions over DAYS days for USERS people in GROUPS groups on PROFILES
profiles into a fresh SQLite database, rolls them up as the service does, starts a real
hub with the usage service on that database, and times:

- 30-day allocation by group, by user and by profile, and a 365-day allocation by group,
  each through `api/v1/allocation` (median of --repeat requests);
- the same reports as a plain SQL GROUP BY over the raw sessions table (the baseline);
- the service's resident memory after the reports;
- ingest: start and stop events posted to `api/v1/events`, one event per request (one
  client, and --clients at once, 16 by default, as many spawners would) and 100 per request.

Prints one JSON object. `--sessions 20000` for a quick run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import requests
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from common import median_ms, wait_for_service  # noqa: E402

from twoi2c_hub.accounting.costs import CostBasis, roll_up_costs
from twoi2c_hub.accounting.db import make_engine, session_maker, upgrade
from twoi2c_hub.accounting.models import DAY_MS, HOUR_MS
from twoi2c_hub.accounting.rollups import roll_up
from twoi2c_hub.config import parse_config
from twoi2c_hub.localhub import LocalHub, tagged_processes
from twoi2c_hub.paths import demo_config

GiB = 1024**3


def generate(path: Path, sessions: int, users: int, groups: int, profiles: int, days: int, now_ms: int, seed=1):
    """Sessions straight into the tables (as recording them one by one would take hours)."""
    rng = random.Random(seed)
    start_ms = now_ms - days * DAY_MS
    connection = sqlite3.connect(path)
    user_groups = {u: rng.sample(range(groups), rng.choice([1, 1, 2])) for u in range(users)}
    profile_resources = [
        (rng.choice([0.5, 1, 2, 4]), rng.choice([1, 2, 4, 8, 16]) * GiB, rng.choice([0, 0, 0, 1]))
        for _ in range(profiles)
    ]
    batch, group_rows = [], []
    for i in range(1, sessions + 1):
        user = rng.randrange(users)
        profile = rng.randrange(profiles)
        cpu, memory, gpus = profile_resources[profile]
        started = start_ms + rng.randrange(days * DAY_MS)
        duration = int(rng.expovariate(1 / (2 * HOUR_MS)))
        stopped = started + duration
        if stopped > now_ms:
            stopped = None
        batch.append(
            (
                i,
                f"user{user}",
                "",
                f"profile{profile}",
                "{}",
                None,
                cpu,
                cpu * 2,
                memory,
                memory,
                gpus,
                None,
                started,
                stopped,
                None if stopped is None else stopped - started,
                None if stopped is None else "user",
                "event",
                None,
                0,
            )
        )
        group_rows.extend((i, f"group{g}") for g in user_groups[user])
        if len(batch) == 50_000:
            _flush(connection, batch, group_rows)
    _flush(connection, batch, group_rows)
    connection.execute("ANALYZE")
    connection.commit()
    connection.close()


def _flush(connection, batch, group_rows):
    connection.executemany(
        "INSERT INTO sessions (id, username, server_name, profile, choices, image, cpu_guarantee, cpu_limit, "
        "mem_guarantee_bytes, mem_limit_bytes, gpu_count, gpu_type, started_ms, stopped_ms, duration_ms, "
        "stop_reason, source, seen_ms, rolled_up) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        batch,
    )
    connection.executemany("INSERT INTO session_groups (session_id, group_name) VALUES (?, ?)", group_rows)
    connection.commit()
    batch.clear()
    group_rows.clear()


BASELINE = {
    "user": "SELECT s.username, COUNT(*), SUM(o), SUM(o * COALESCE(s.cpu_guarantee, s.cpu_limit, 0)) "
    "FROM (SELECT *, MIN(COALESCE(stopped_ms, :now), :e) - MAX(started_ms, :s) AS o FROM sessions "
    "WHERE started_ms < :e AND COALESCE(stopped_ms, :now) > :s) s GROUP BY s.username",
    "profile": "SELECT s.profile, COUNT(*), SUM(o), SUM(o * COALESCE(s.cpu_guarantee, s.cpu_limit, 0)) "
    "FROM (SELECT *, MIN(COALESCE(stopped_ms, :now), :e) - MAX(started_ms, :s) AS o FROM sessions "
    "WHERE started_ms < :e AND COALESCE(stopped_ms, :now) > :s) s GROUP BY s.profile",
    "group": "SELECT g.group_name, COUNT(*), SUM(o), SUM(o * COALESCE(s.cpu_guarantee, s.cpu_limit, 0)) "
    "FROM (SELECT *, MIN(COALESCE(stopped_ms, :now), :e) - MAX(started_ms, :s) AS o FROM sessions "
    "WHERE started_ms < :e AND COALESCE(stopped_ms, :now) > :s) s "
    "JOIN session_groups g ON g.session_id = s.id GROUP BY g.group_name",
}


async def post_concurrently(url, token, events, connections):
    """Events posted one per request, `connections` at a time (as many spawners would)."""
    import aiohttp

    queue = list(reversed(events))
    headers = {"Authorization": f"token {token}"}

    async def worker(session):
        while queue:
            event = queue.pop()
            async with session.post(url, json=event, headers=headers) as response:
                response.raise_for_status()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:
        began = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(connections)))
        return len(events) / (time.perf_counter() - began)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--profiles", type=int, default=12)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=16, help="clients posting at once (16: as many spawners)")
    parser.add_argument(
        "--cost-catch-up",
        action="store_true",
        help="leave the history's costs to the cost service (as after an import): reports and intake are "
        "timed while it catches up on the database they share",
    )
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="twoi2c-bench-"))
    database = work / "usage.sqlite"
    url = f"sqlite:///{database}"
    now_ms = int(time.time() * 1000) // DAY_MS * DAY_MS  # midnight: 30-day windows are whole days
    figures: dict = {
        "sessions": args.sessions,
        "users": args.users,
        "groups": args.groups,
        "profiles": args.profiles,
        "days": args.days,
        "cost_catch_up": args.cost_catch_up,
    }

    upgrade(url)
    began = time.perf_counter()
    generate(database, args.sessions, args.users, args.groups, args.profiles, args.days, now_ms)
    figures["generate_seconds"] = round(time.perf_counter() - began, 1)
    engine = make_engine(url)
    began = time.perf_counter()
    with session_maker(engine)() as db:
        roll_up(db, now_ms)
        figures["rollup_seconds"] = round(time.perf_counter() - began, 1)
        # the cost service shares the database: a running hub has rolled up its costs too,
        # else it would catch up on a year of sessions while the reports and intake are timed
        if not args.cost_catch_up:
            community = parse_config(yaml.safe_dump(demo_config()))
            began = time.perf_counter()
            roll_up_costs(db, CostBasis(community.pricing.to_pricing(), community.instance_catalog()), now_ms)
            figures["cost_rollup_seconds"] = round(time.perf_counter() - began, 1)
    engine.dispose()
    with sqlite3.connect(database) as connection:
        connection.execute("ANALYZE")  # as the service's PRAGMA optimize keeps it

    # what a spawn-time budget check reads: one person's usage over 30 days
    from twoi2c_hub.accounting.reports import usage

    engine = make_engine(url)
    with session_maker(engine)() as db:
        people = [f"user{i}" for i in range(0, args.users, max(1, args.users // 50))]
        figures["one_person_30d_ms"] = median_ms(
            lambda: [usage(db, now_ms - 30 * DAY_MS, now_ms, "profile", now_ms, username=p) for p in people],
            args.repeat,
        ) / len(people)
        figures["one_person_30d_ms"] = round(figures["one_person_30d_ms"], 3)
    engine.dispose()

    windows = {
        "30d": (now_ms - 30 * DAY_MS, now_ms),
        "365d": (now_ms - 365 * DAY_MS, now_ms),
    }
    reports = [("30d", "group"), ("30d", "user"), ("30d", "profile"), ("365d", "group")]

    # the baseline: the same reports as one GROUP BY over the raw sessions
    connection = sqlite3.connect(database)
    for window, aggregate in reports:
        s, e = windows[window]
        figures[f"baseline_{window}_by_{aggregate}_ms"] = median_ms(
            lambda aggregate=aggregate, s=s, e=e: connection.execute(
                BASELINE[aggregate], {"s": s, "e": e, "now": now_ms}
            ).fetchall(),
            args.repeat,
        )
    connection.close()

    # the service, run by a real hub on that database
    config = demo_config()
    config["usage"] = {"database_url": url, "reconcile_interval": 3600}
    config["culling"] = {"enabled": False}
    (work / "community.yaml").write_text(yaml.safe_dump(config))
    token, events_token = secrets.token_hex(32), secrets.token_hex(32)
    extra = f"""
c.JupyterHub.services.append({{"name": "bench", "api_token": {token!r}}})
c.JupyterHub.load_roles.append({{"name": "bench", "services": ["bench"],
    "scopes": ["custom:usage:read-all", "access:services!service=usage", "read:services"]}})
for _s in c.JupyterHub.services:
    if _s["name"] == "usage":
        _s["environment"]["TWOI2C_USAGE_EVENTS_TOKEN"] = {events_token!r}
"""
    hub = LocalHub(work / "community.yaml", work / "hub", extra_config=extra)
    hub.start(timeout=120)
    try:
        api = f"{hub.url}/services/usage/api/v1"
        session = requests.Session()
        session.headers["Authorization"] = f"token {token}"
        wait_for_service(hub, "usage", timeout=60)
        for window, aggregate in reports:
            s, e = windows[window]
            params = {"window": f"{s // 1000},{e // 1000}", "aggregate": aggregate}
            response = session.get(f"{api}/allocation", params=params, timeout=120)
            assert response.status_code == 200, response.text
            # OpenCost's shape: one {name: allocation} per step (one step here)
            figures[f"rows_{window}_by_{aggregate}"] = sum(len(step) for step in response.json()["data"])
            figures[f"api_{window}_by_{aggregate}_ms"] = median_ms(
                lambda params=params: session.get(f"{api}/allocation", params=params, timeout=120).raise_for_status(),
                args.repeat,
            )
            figures[f"api_vs_baseline_{window}_by_{aggregate}"] = round(
                figures[f"api_{window}_by_{aggregate}_ms"] / figures[f"baseline_{window}_by_{aggregate}_ms"], 3
            )

        pid = next(
            p
            for p in tagged_processes(hub.tag)
            if b"twoi2c_hub.services.usage" in Path(f"/proc/{p}/cmdline").read_bytes()
        )
        status = Path(f"/proc/{pid}/status").read_text()
        figures["service_rss_mb"] = round(int(status.split("VmRSS:")[1].split()[0]) / 1024, 1)
        figures["service_peak_rss_mb"] = round(int(status.split("VmHWM:")[1].split()[0]) / 1024, 1)

        # the spawners post their events to the service directly, not through the proxy
        service_url = session.get(f"{hub.url}/hub/api/services/usage", timeout=30).json()["url"]
        events_url = f"{service_url.rstrip('/')}/services/usage/api/v1/events"
        events = requests.Session()
        events.headers["Authorization"] = f"token {events_token}"

        def event_pairs(n, offset):
            for i in range(n // 2):
                started = now_ms + (offset + i) * 1000
                yield {
                    "type": "start",
                    "username": f"ingest{i % 500}",
                    "server_name": "",
                    "started": started,
                    "server": {"profile": "profile1", "cpu_guarantee": 1},
                    "groups": ["group1"],
                }
                yield {
                    "type": "stop",
                    "username": f"ingest{i % 500}",
                    "server_name": "",
                    "started": started,
                    "stopped": started + 500,
                    "reason": "user",
                }

        sequential = list(event_pairs(args.events // 2, 0))
        began = time.perf_counter()
        for event in sequential:
            events.post(events_url, json=event, timeout=30).raise_for_status()
        figures["ingest_events_per_second_sequential"] = round(len(sequential) / (time.perf_counter() - began))
        concurrent = list(event_pairs(args.events * 2, args.events))
        figures["ingest_events_per_second_concurrent"] = round(
            asyncio.run(post_concurrently(events_url, events_token, concurrent, connections=args.clients))
        )
        batched = list(event_pairs(args.events * 5, args.events * 4))
        began = time.perf_counter()
        for i in range(0, len(batched), 100):
            events.post(events_url, json=batched[i : i + 100], timeout=30).raise_for_status()
        figures["ingest_events_per_second_100_per_request"] = round(len(batched) / (time.perf_counter() - began))
    finally:
        hub.stop()
    targets = {
        "30d_reports_at_most_100ms": all(figures[f"api_30d_by_{a}_ms"] <= 100 for a in ("group", "user", "profile")),
        "30d_reports_at_most_half_the_baseline": all(
            figures[f"api_vs_baseline_30d_by_{a}"] <= 0.5 for a in ("group", "user", "profile")
        ),
        "service_rss_at_most_200mb": figures["service_peak_rss_mb"] <= 200,
        "ingest_at_least_2000_per_second": figures["ingest_events_per_second_concurrent"] >= 2000,
    }
    figures["targets_met"] = targets
    print(json.dumps(figures))
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
