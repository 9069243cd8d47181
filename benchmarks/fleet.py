"""The fleet at scale: N hubs' real usage and cost services on loopback, collected by
`twoi2c-hub fleet collect` and read through the fleet service of a real operator's hub,
against plain SQL over the union of every hub's raw sessions.

- N hubs (`--hubs`, 50 by default) on 5 clusters, some communities with two hubs on a
  cluster, hubs of very different sizes (weights falling as 1/rank); about `--weekly`
  (4,000) people a week fleet-wide over `--days` (365), busier in term time, a share of
  them on several hubs of their cluster and a few on other clusters too; each hub's
  sessions written into its own database, rolled up (usage and cost) as its services do.
- Each hub is its real usage and cost services (processes of their own, as the hub would
  start them) behind a door of its own (`hub_doors.py`: what the fleet and the services
  need of the hub: its address, the token check, the proxying).
- The fleet (`fleet.yaml`: the hubs, clusters with a monthly bill and each way of sharing,
  fixed fees and fees from the hubs' statements) is collected in full, then again
  (incrementally); each collection timed, with the collecting process's peak RSS.
- The operator's hub (a real JupyterHub with its fleet service) answers the fleet page
  and `active-users` (each aggregate, yesterday) and `recovery` (last month); times,
  median of --repeat, and the fleet service's peak RSS.
- The same figures by plain SQL over the union of every hub's raw sessions (people by
  name, so a person on several hubs is counted once by construction; each hub's cost
  from its sessions and prices, the bills' rest shared by the clusters' rules), timed;
  every figure the API gives is compared with it.

Prints one JSON object with `targets_met`: exact figures; the incremental collection at
most 10 % of the full one; the fleet's answers at most 0.05x the union computation; the
fleet service and the collector at most 200 MB. `--hubs 3 --weekly 60 --days 70` is the
short run of the tests.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import requests
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from common import wait_for_service  # noqa: E402

from twoi2c_hub.accounting.costs import CostBasis, roll_up_costs  # noqa: E402
from twoi2c_hub.accounting.db import make_engine, session_maker, upgrade  # noqa: E402
from twoi2c_hub.accounting.models import DAY_MS, HOUR_MS  # noqa: E402
from twoi2c_hub.accounting.rollups import roll_up  # noqa: E402
from twoi2c_hub.config import parse_config  # noqa: E402
from twoi2c_hub.localhub import LocalHub, tagged_processes  # noqa: E402
from twoi2c_hub.network import free_port  # noqa: E402
from twoi2c_hub.paths import demo_config  # noqa: E402

GiB = 1024**3
CPU, RAM, GPU = 0.031611, 0.004237, 0.95  # per core-hour, GiB-hour, GPU-hour
# (cpu guarantee, memory guarantee, GPUs, how often chosen)
PROFILES = [(0.5, 1 * GiB, 0, 5), (1.0, 4 * GiB, 0, 3), (2.0, 8 * GiB, 0, 2), (4.0, 16 * GiB, 1, 1)]
CLUSTERS = 5
SPLITS = ["by_attributed_cost", "even", "fixed", "by_attributed_cost", "by_attributed_cost"]
FROM_HUB_FEE = 120  # the monthly fee of the communities whose fee is their hubs' statements'
SECRET_ENV = "TWOI2C_BENCH_FLEET_SECRET"
CENT = Decimal("0.01")
READER = """
c.JupyterHub.services.append({{"name": "bench", "api_token": {token!r}}})
c.JupyterHub.load_roles.append({{"name": "bench", "services": ["bench"],
    "scopes": ["custom:fleet:read", "access:services!service=fleet"]}})
"""


def cents(value) -> Decimal:
    return Decimal(repr(float(value))).quantize(CENT, ROUND_HALF_EVEN)


# -- the fleet --------------------------------------------------------------------------


def plan(hubs: int, seed: int) -> list[dict]:
    """Each hub's name, cluster, community and weight (its share of the people)."""
    rng = random.Random(seed)
    clusters = min(CLUSTERS, hubs)
    order = list(range(hubs))
    rng.shuffle(order)  # the largest hubs on any cluster
    planned = []
    for i in range(hubs):
        cluster = i % clusters
        # every fourth hub past the first round is a second hub of a community on its cluster
        shared = i >= clusters and i % 4 == 3
        community = planned[i - clusters]["community"] if shared else f"community-{i:02d}"
        planned.append(
            {
                "name": f"hub-{i:02d}",
                "cluster": f"cluster-{cluster}",
                "community": community,
                "weight": 1 / (order[i] + 1),
            }
        )
    return planned


def season(day: int) -> float:
    """How busy a day of the year is: terms from mid-September and from February."""
    day_of_year = date.fromordinal(date(1970, 1, 1).toordinal() + day).timetuple().tm_yday
    return 1.25 if 258 <= day_of_year <= 350 or 32 <= day_of_year <= 150 else 0.55


def generate(planned: list[dict], weekly: int, days: int, today: int, seed: int) -> dict[str, list[tuple]]:
    """Each hub's sessions (username, started_ms, stopped_ms, profile index), all ended
    before `today` (an epoch day) began."""
    rng = random.Random(seed)
    total_weight = sum(h["weight"] for h in planned)
    # people a week per hub in term time (a pool of 2.5 times that, each active with a
    # chance of 0.4 x 1.25): counted once, a quarter of them are on two hubs
    target = {h["name"]: max(2.0, weekly * 1.26 / 1.25 * h["weight"] / total_weight) for h in planned}
    pools: dict[str, list[str]] = {}
    by_cluster = defaultdict(list)
    for h in planned:
        by_cluster[h["cluster"]].append(h)
    everyone = []
    for cluster, members in sorted(by_cluster.items()):
        pool_sizes = {h["name"]: math.ceil(2.5 * target[h["name"]]) for h in members}
        # fewer people on the cluster than its hubs' pools: some are on two of its hubs
        people = [f"{cluster}-person{n}" for n in range(max(1, int(0.85 * sum(pool_sizes.values()))))]
        everyone.append(people)
        for h in members:
            size = min(pool_sizes[h["name"]], len(people))
            pools[h["name"]] = rng.sample(people, size)
    flat = [p for people in everyone for p in people]
    for h in planned:  # a few people of other clusters too
        pool = pools[h["name"]]
        pool.extend(rng.sample(flat, max(1, len(pool) // 30)))
    weights = [p[3] for p in PROFILES]
    sessions: dict[str, list[tuple]] = {}
    first_day = today - days
    for h in planned:
        rows = []
        for week_start in range(first_day, today, 7):
            chance = min(1.0, 0.4 * season(week_start))
            for person in pools[h["name"]]:
                if rng.random() >= chance:
                    continue
                for _ in range(rng.choice([1, 1, 2, 2, 3, 4])):
                    day = week_start + rng.randrange(7)
                    started = day * DAY_MS + rng.randrange(8 * HOUR_MS, 20 * HOUR_MS)
                    duration = int(min(12 * HOUR_MS, max(300_000, rng.expovariate(1 / (1.5 * HOUR_MS)))))
                    if day < first_day or started + duration >= today * DAY_MS:
                        continue
                    profile = rng.choices(range(len(PROFILES)), weights)[0]
                    rows.append((person, started, started + duration, profile))
        sessions[h["name"]] = rows
    return sessions


def write_hub(path: Path, rows: list[tuple], community, now_ms: int) -> None:
    """Sessions straight into the hub's tables, then rolled up as its services do."""
    url = f"sqlite:///{path}"
    upgrade(url)
    connection = sqlite3.connect(path)
    connection.executemany(
        "INSERT INTO sessions (username, server_name, profile, choices, cpu_guarantee, cpu_limit, "
        "mem_guarantee_bytes, mem_limit_bytes, gpu_count, started_ms, stopped_ms, duration_ms, stop_reason, "
        "source, rolled_up) VALUES (?, '', ?, '{}', ?, ?, ?, ?, ?, ?, ?, ?, 'user', 'event', 0)",
        [
            (who, f"profile{p}", PROFILES[p][0], PROFILES[p][0] * 2, PROFILES[p][1], PROFILES[p][1] * 2,
             PROFILES[p][2], started, stopped, stopped - started)
            for who, started, stopped, p in rows
        ],
    )  # fmt: skip
    connection.commit()
    connection.close()
    engine = make_engine(url)
    with session_maker(engine)() as db:
        roll_up(db, now_ms)
        roll_up_costs(db, CostBasis(community.pricing.to_pricing(), community.instance_catalog()), now_ms)
    engine.dispose()


def hub_config(hub: dict, database: Path, from_hub: bool) -> dict:
    config = demo_config()
    config["hub"]["name"] = hub["name"]
    config["culling"] = {"enabled": False}
    config["usage"] = {
        "database_url": f"sqlite:///{database}",
        "fleet_secret_env": SECRET_ENV,
        "reconcile_interval": 3600,
    }
    config["cost"] = {"rollup_interval": 3600}
    config["pricing"] = {
        "currency": "USD",
        "prices": [{"effective": "2000-01-01", "cpu_core_hour": CPU, "memory_gib_hour": RAM, "gpu_hour": GPU}],
        "fee": {"monthly": FROM_HUB_FEE if from_hub else 0},
    }
    return config


def month_range(month: str) -> tuple[int, int]:
    first = date(int(month[:4]), int(month[5:]), 1)
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    epoch = date(1970, 1, 1)
    return (first - epoch).days * DAY_MS, (following - epoch).days * DAY_MS


def fleet_file(work: Path, planned: list[dict], sessions: dict, tokens: dict, days: int) -> dict:
    """The fleet config: bills of about 1.4 times what the clusters' hubs cost a month on
    average, each way of sharing, fixed fees and fees from the hubs."""
    communities = sorted({h["community"] for h in planned})
    from_hub = set(communities[3::7])
    rng = random.Random(7)
    per_cluster = defaultdict(float)
    for h in planned:
        for _, started, stopped, p in sessions[h["name"]]:
            per_cluster[h["cluster"]] += (stopped - started) / HOUR_MS * hourly(p)
    clusters = []
    for i, cluster in enumerate(sorted({h["cluster"] for h in planned})):
        spec = {
            "name": cluster,
            "monthly_cost": float(cents(1.4 * per_cluster[cluster] / max(1, days) * 30 + 10)),
            "shared_cost": SPLITS[i % len(SPLITS)],
        }
        if spec["shared_cost"] == "fixed":
            on = sorted({h["community"] for h in planned if h["cluster"] == cluster})
            share = (Decimal(1) / len(on)).quantize(Decimal("0.0001"), rounding="ROUND_DOWN")
            spec["shares"] = {c: float(share) for c in on}
            spec["shares"][on[0]] = float(Decimal(1) - share * (len(on) - 1))
        clusters.append(spec)
    return {
        "fleet": {
            "name": "Benchmark Operator",
            "secret_env": SECRET_ENV,
            "database_url": f"sqlite:///{work / 'fleet.sqlite'}",
            "history_days": days + 1,
            "request_timeout": 300,
        },
        "clusters": clusters,
        "communities": [
            {"name": c, "fee": "from_hub" if c in from_hub else rng.randrange(50, 800)} for c in communities
        ],
        "hubs": [
            {
                "name": h["name"],
                "community": h["community"],
                "cluster": h["cluster"],
                "url": f"http://127.0.0.1:{h['door']}",
                "token_env": tokens[h["name"]][0],
            }
            for h in planned
        ],
    }


def hourly(profile: int) -> float:
    cpu, memory, gpus, _ = PROFILES[profile]
    return cpu * CPU + memory / GiB * RAM + gpus * GPU


# -- the baseline: plain SQL over the union of every hub's raw sessions -------------------

UNION = """
CREATE TABLE hubs (hub TEXT PRIMARY KEY, cluster TEXT, community TEXT);
CREATE TABLE sessions (hub TEXT, username TEXT, started_ms INTEGER, stopped_ms INTEGER,
                       cpu REAL, memory_bytes INTEGER, gpus INTEGER);
"""
ACTIVE = {  # people with a session overlapping [:a, :b), each once per group
    "hub": "SELECT s.hub, COUNT(DISTINCT s.username) FROM sessions s "
    "WHERE s.started_ms < :b AND s.stopped_ms > :a GROUP BY s.hub",
    "cluster": "SELECT h.cluster, COUNT(DISTINCT s.username) FROM sessions s JOIN hubs h ON h.hub = s.hub "
    "WHERE s.started_ms < :b AND s.stopped_ms > :a GROUP BY h.cluster",
    "community": "SELECT h.community, COUNT(DISTINCT s.username) FROM sessions s JOIN hubs h ON h.hub = s.hub "
    "WHERE s.started_ms < :b AND s.stopped_ms > :a GROUP BY h.community",
    "fleet": "SELECT 'fleet', COUNT(DISTINCT s.username) FROM sessions s WHERE s.started_ms < :b AND s.stopped_ms > :a",
}
HUB_COST = f"""
SELECT hub, SUM((MIN(stopped_ms, :e) - MAX(started_ms, :s)) / {HOUR_MS}.0
                * (cpu * {CPU} + memory_bytes / {GiB}.0 * {RAM} + gpus * {GPU}))
FROM sessions WHERE started_ms < :e AND stopped_ms > :s GROUP BY hub
"""


def union_database(path: Path, planned: list[dict], sessions: dict) -> None:
    connection = sqlite3.connect(path)
    connection.executescript(UNION)
    connection.executemany(
        "INSERT INTO hubs VALUES (?, ?, ?)", [(h["name"], h["cluster"], h["community"]) for h in planned]
    )
    for h in planned:
        connection.executemany(
            "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (h["name"], who, s, e, PROFILES[p][0], PROFILES[p][1], PROFILES[p][2])
                for who, s, e, p in sessions[h["name"]]
            ],
        )
    connection.commit()
    connection.close()


def union_figures(path: Path, fleet: dict, day: int, month: str) -> dict:
    """Yesterday's daily, weekly and monthly active users of every hub, cluster, community
    and the fleet, and last month's money of every community, by plain SQL and arithmetic."""
    connection = sqlite3.connect(path)
    people: dict[str, dict[str, dict[str, int]]] = {}
    for aggregate, query in ACTIVE.items():
        rows = defaultdict(dict)
        for window, length in (("daily", 1), ("weekly", 7), ("monthly", 30)):
            bounds = {"a": (day - length + 1) * DAY_MS, "b": (day + 1) * DAY_MS}
            for name, count in connection.execute(query, bounds):
                rows[name][window] = count
        people[aggregate] = {
            name: {w: counts.get(w, 0) for w in ("daily", "weekly", "monthly")} for name, counts in rows.items()
        }
    start, end = month_range(month)
    attributed = {hub: cents(cost) for hub, cost in connection.execute(HUB_COST, {"s": start, "e": end})}
    connection.close()
    return {"people": people, "money": money(fleet, attributed)}


def money(fleet: dict, attributed: dict[str, Decimal]) -> dict[str, dict[str, Decimal]]:
    """Each community's attributed and shared cost, fee and cost: the rules of docs/fleet.md."""
    hubs = {h["name"]: h for h in fleet["hubs"]}
    rows = {
        c["name"]: {"attributedCost": Decimal(0), "sharedCost": Decimal(0), "fee": Decimal(0)}
        for c in fleet["communities"]
    }
    for hub, h in hubs.items():
        rows[h["community"]]["attributedCost"] += attributed.get(hub, Decimal(0))
    for cluster in fleet["clusters"]:
        on = sorted({h["community"] for h in hubs.values() if h["cluster"] == cluster["name"]})
        theirs = dict.fromkeys(on, Decimal(0))
        for name, h in hubs.items():
            if h["cluster"] == cluster["name"]:
                theirs[h["community"]] += attributed.get(name, Decimal(0))
        shared = cents(cluster["monthly_cost"]) - sum(theirs.values())
        total = sum(theirs.values())
        for c in on:
            if cluster["shared_cost"] == "fixed":
                part = Decimal(repr(cluster["shares"][c]))
            elif cluster["shared_cost"] == "even" or not total:
                part = Decimal(1) / len(on)
            else:
                part = theirs[c] / total
            rows[c]["sharedCost"] += shared * part  # to the cent below: a cent of rounding each
    for c in fleet["communities"]:
        hubs_of = [n for n, h in hubs.items() if h["community"] == c["name"]]
        rows[c["name"]]["fee"] = Decimal(FROM_HUB_FEE * len(hubs_of)) if c["fee"] == "from_hub" else Decimal(c["fee"])
    for row in rows.values():
        row["cost"] = row["attributedCost"] + row["sharedCost"]
        row["recovery"] = row["fee"] / row["cost"] if row["cost"] else None
    return rows


# -- running it ---------------------------------------------------------------------------


def start_services(work: Path, planned: list[dict], secret: str, batch: int = 8) -> list[subprocess.Popen]:
    """The doors, then each hub's usage and cost services, `batch` hubs at a time (each
    batch answering before the next starts: a port picked is bound within seconds)."""
    doors = []
    for h in planned:
        h["door"], h["ports"] = free_port(), {"usage": free_port(), "cost": free_port()}
        h["service_token"] = secrets.token_hex(16)
        doors.append({"port": h["door"], **h["ports"], "fleet_token": h["token"], "service_token": h["service_token"]})
    (work / "doors.json").write_text(json.dumps(doors))
    front = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "hub_doors.py"), str(work / "doors.json")],
        stdout=subprocess.PIPE,
        stderr=open(work / "doors.log", "w"),  # noqa: SIM115 - the process's own
        text=True,
    )
    processes = [front]
    if front.stdout.readline().strip() != "ready":
        raise RuntimeError("the hubs' doors did not open: " + (work / "doors.log").read_text()[-2000:])
    for first in range(0, len(planned), batch):
        started = []
        for h in planned[first : first + batch]:
            for name, port in h["ports"].items():
                environment = {
                    **os.environ,
                    "JUPYTERHUB_SERVICE_NAME": name,
                    "JUPYTERHUB_SERVICE_PREFIX": f"/services/{name}/",
                    "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}",
                    "JUPYTERHUB_API_URL": f"http://127.0.0.1:{h['door']}/hub/api",
                    "JUPYTERHUB_API_TOKEN": h["service_token"],
                    "JUPYTERHUB_CLIENT_ID": f"service-{name}",
                    "JUPYTERHUB_BASE_URL": "/",
                    SECRET_ENV: secret,
                    f"TWOI2C_{name.upper()}_DATABASE_URL": f"sqlite:///{work / h['name'] / 'usage.sqlite'}",
                    "TWOI2C_USAGE_EVENTS_TOKEN": secrets.token_hex(16),
                    "TWOI2C_USAGE_RECONCILE_INTERVAL": "3600",
                    "TWOI2C_COST_CHECK_TOKEN": secrets.token_hex(16),
                }
                log = open(work / h["name"] / f"{name}.log", "w")  # noqa: SIM115 - the process's own
                config = str(work / h["name"] / "community.yaml")
                command = [sys.executable, "-m", f"twoi2c_hub.services.{name}", "--config", config]
                process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
                processes.append(process)
                started.append((h, name, process))
        deadline = time.monotonic() + 120
        for h, name, process in started:
            while not answers(f"http://127.0.0.1:{h['door']}/services/{name}/health"):
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (work / h["name"] / f"{name}.log").read_text()[-3000:]
                    raise RuntimeError(f"{h['name']}'s {name} service did not start:\n{log}")
                time.sleep(0.2)
    return processes


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=30).ok
    except requests.RequestException:
        return False


def collect(work: Path, environment: dict) -> tuple[float, float, float, str]:
    """One `twoi2c-hub fleet collect`: its seconds as it says them (the collection, as the
    service runs it), the command's seconds, its peak RSS (MB), its output."""
    began = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "twoi2c_hub.cli", "fleet", "collect", "--config", str(work / "fleet.yaml")],
        env={**os.environ, **environment},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    peak = [0.0]

    def sample():  # the peak since its exec: ru_maxrss would count this process's before it
        while (status := peak_rss_mb(process.pid)) is not None:
            peak[0] = max(peak[0], status)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = process.stdout.read()
    sampler.join()
    status = process.wait()
    seconds = time.perf_counter() - began
    if status != 0:
        raise RuntimeError("the collection failed:\n" + output[-3000:])
    said = float(re.search(r" in ([0-9.]+) s$", output.strip().splitlines()[-1])[1])
    return said, seconds, peak[0], output


def days_pulled(output: str) -> int:
    """The days of people a collection read, summed over the hubs ("hub-1: 70 days (...)";
    a hub with nothing new reads none)."""
    return sum(int(days) for days in re.findall(r": (\d+) days \(", output))


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak RSS since it started (VmHWM), None once it ended."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None  # a zombie until waited for


def timed(get, repeat: int) -> tuple[float, float, object]:
    """(the first answer's ms, the median's of `repeat` more, the answer)."""
    began = time.perf_counter()
    answer = get()
    first = (time.perf_counter() - began) * 1000
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        get()
        times.append((time.perf_counter() - began) * 1000)
    return first, statistics.median(times), answer


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hubs", type=int, default=50)
    parser.add_argument("--weekly", type=int, default=4000, help="people a week fleet-wide (before seasons)")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="twoi2c-fleet-bench-"))
    now_ms = int(time.time() * 1000)
    today = now_ms // DAY_MS
    yesterday = today - 1
    month = f"{date.fromordinal(date(1970, 1, 1).toordinal() + today).replace(day=1) - timedelta(days=1):%Y-%m}"
    figures: dict = {
        "hubs": args.hubs,
        "days": args.days,
        "month": month,
        "day": str(date(1970, 1, 1) + timedelta(days=yesterday)),
    }
    secret = secrets.token_hex(32)
    planned = plan(args.hubs, args.seed)
    tokens = {h["name"]: (f"TWOI2C_BENCH_TOKEN_{i}", secrets.token_hex(32)) for i, h in enumerate(planned)}
    for h in planned:
        h["token"] = tokens[h["name"]][1]
    processes: list[subprocess.Popen] = []
    hub = None
    try:
        began = time.perf_counter()
        sessions = generate(planned, args.weekly, args.days, today, args.seed)
        communities = sorted({h["community"] for h in planned})
        from_hub = set(communities[3::7])
        for h in planned:
            (work / h["name"]).mkdir()
            config = hub_config(h, work / h["name"] / "usage.sqlite", h["community"] in from_hub)
            (work / h["name"] / "community.yaml").write_text(yaml.safe_dump(config))
            write_hub(
                work / h["name"] / "usage.sqlite", sessions[h["name"]], parse_config(yaml.safe_dump(config)), now_ms
            )
        figures["sessions"] = sum(len(rows) for rows in sessions.values())
        figures["generate_seconds"] = round(time.perf_counter() - began, 1)
        sizes = sorted((len(rows) for rows in sessions.values()), reverse=True)
        figures["sessions_per_hub_largest_median_smallest"] = [sizes[0], sizes[len(sizes) // 2], sizes[-1]]

        began = time.perf_counter()
        processes = start_services(work, planned, secret)
        figures["services_start_seconds"] = round(time.perf_counter() - began, 1)
        fleet = fleet_file(work, planned, sessions, tokens, args.days)
        (work / "fleet.yaml").write_text(yaml.safe_dump(fleet))
        environment = {SECRET_ENV: secret, **dict(tokens.values())}

        full, full_command, full_rss, output = collect(work, environment)
        incremental, incremental_command, incremental_rss, incremental_output = collect(work, environment)
        figures |= {
            "full_collection_seconds": round(full, 2),
            "incremental_collection_seconds": round(incremental, 2),
            "incremental_to_full": round(incremental / full, 3),
            # what each pulled: the days of people it read from the hubs (the collector's lines)
            "days_pulled_full": days_pulled(output),
            "days_pulled_incremental": days_pulled(incremental_output),
            "full_command_seconds": round(full_command, 2),
            "incremental_command_seconds": round(incremental_command, 2),
            "collector_peak_rss_mb": round(max(full_rss, incremental_rss), 1),
            "collected": output.strip().splitlines()[-1],
        }

        # the operator's hub: its fleet service reads the fleet's database
        operator = demo_config()
        operator["culling"] = {"enabled": False}
        operator["usage"] = {"database_url": f"sqlite:///{work / 'operator.sqlite'}", "reconcile_interval": 3600}
        operator["fleet_view"] = {
            "config": str(work / "fleet.yaml"),
            "operator_groups": ["researchers"],
            "collect_interval": 0,
        }
        (work / "operator.yaml").write_text(yaml.safe_dump(operator))
        token = secrets.token_hex(32)
        extra = READER.format(token=token)
        hub = LocalHub(work / "operator.yaml", work / "operator", environment=environment, extra_config=extra)
        hub.start(timeout=180)
        wait_for_service(hub, "fleet")
        session = requests.Session()
        session.headers["Authorization"] = f"token {token}"
        base = f"{hub.url}/services/fleet"

        def get(path, **params):
            def call():
                answer = session.get(f"{base}/{path}", params=params, timeout=600)
                answer.raise_for_status()
                return answer

            return call

        day = figures["day"]
        window = f"{day}T00:00:00Z,{day}T23:59:59Z"
        answers, api_ms, first_ms = {}, {}, {}
        for aggregate in ("hub", "cluster", "community", "fleet"):
            first, median, answer = timed(get("api/v1/active-users", window=window, aggregate=aggregate), args.repeat)
            answers[aggregate] = answer.json()["data"]
            api_ms[f"active_users_{aggregate}"], first_ms[f"active_users_{aggregate}"] = (
                round(median, 1),
                round(first, 1),
            )
        first, median, answer = timed(get("api/v1/recovery", month=month), args.repeat)
        answers["recovery"] = answer.json()["data"]
        api_ms["recovery"], first_ms["recovery"] = round(median, 1), round(first, 1)
        _, health, _ = timed(get("health"), args.repeat)
        figures["health_ms"] = round(health, 1)  # what any request through the hub takes
        first, median, page = timed(get(""), args.repeat)
        figures["page_ms"] = {"first": round(first, 1), "median": round(median, 1)}
        figures["api_ms"] = api_ms
        figures["api_first_ms"] = first_ms
        service = [
            pid
            for pid in tagged_processes(hub.tag)
            if b"twoi2c_hub.services.fleet" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        figures["fleet_service_peak_rss_mb"] = round(max(peak_rss_mb(pid) for pid in service), 1)

        # the baseline
        union_database(work / "union.sqlite", planned, sessions)
        times, union = [], None
        for _ in range(max(1, min(3, args.repeat))):
            began = time.perf_counter()
            union = union_figures(work / "union.sqlite", fleet, yesterday, month)
            times.append((time.perf_counter() - began) * 1000)
        figures["union_computation_ms"] = round(statistics.median(times), 1)
        figures["api_to_union"] = round(sum(api_ms.values()) / statistics.median(times), 4)
        figures["api_first_to_union"] = round(sum(first_ms.values()) / statistics.median(times), 4)
        figures["weekly_active_users"] = union["people"]["fleet"]["fleet"]["weekly"]
        figures["weekly_active_users_hubs_summed"] = sum(c["weekly"] for c in union["people"]["hub"].values())

        wrong = []
        for aggregate in ("hub", "cluster", "community", "fleet"):
            got = {row["name"]: {w: row[w] for w in ("daily", "weekly", "monthly")} for row in answers[aggregate]}
            want = union["people"][aggregate]
            for name in set(got) | set(want):
                zero = {"daily": 0, "weekly": 0, "monthly": 0}
                if got.get(name, zero) != want.get(name, zero):
                    wrong.append(f"active users of {aggregate} {name}: {got.get(name)} != {want.get(name)}")
        worst = {"attributedCost": 0.0, "sharedCost": 0.0, "fee": 0.0, "cost": 0.0, "recovery": 0.0}
        got = {row["name"]: row for row in answers["recovery"]}
        for name, want in union["money"].items():
            for key in worst:
                if want[key] is None or got[name][key] is None:
                    if want[key] != got[name][key]:
                        wrong.append(f"{name} {key}: {got[name][key]} != {want[key]}")
                    continue
                worst[key] = max(worst[key], abs(float(want[key]) - got[name][key]))
        figures["largest_money_differences"] = {k: round(v, 6) for k, v in worst.items()}
        # a community's shared cost is split in whole cents: at most a cent from the exact part
        if (
            worst["attributedCost"] > 0.005
            or worst["fee"] > 0.005
            or worst["sharedCost"] > 0.0101
            or worst["cost"] > 0.0101
        ):
            wrong.append(f"money differs: {worst}")
        fleet_total = got["fleet"]["cost"]
        bills = sum(c["monthly_cost"] for c in fleet["clusters"])
        if abs(fleet_total - bills) > 0.005:
            wrong.append(f"the fleet's cost {fleet_total} is not its clusters' bills {bills}")
        # the figure as the page marks it: <data class="twoi2c-number" value="64">64</data>
        found = re.search(r'id="weekly-active-users"><data class="twoi2c-number" value="([0-9]+)"', page.text)
        shown = int(found[1]) if found else None
        figures["page_weekly_active_users"] = shown
        figures["wrong"] = wrong[:20]
        figures["targets_met"] = {
            "exact": not wrong,
            "incremental_at_most_10_percent": incremental <= 0.1 * full,
            "api_at_most_0_05_of_union": figures["api_to_union"] <= 0.05,
            "fleet_service_rss_at_most_200_mb": figures["fleet_service_peak_rss_mb"] <= 200,
            "collector_rss_at_most_200_mb": figures["collector_peak_rss_mb"] <= 200,
            "page_shows_weekly_users": shown == figures["weekly_active_users"],
        }
    except BaseException:
        print(f"the run's files are kept in {work}", file=sys.stderr)
        raise
    finally:
        if hub is not None:
            hub.stop()
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    shutil.rmtree(work, ignore_errors=True)  # once nothing runs in it
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
