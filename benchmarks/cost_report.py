"""Cost reports and the spawn-time budget check at scale, against plain SQL over the raw
sessions, through the running cost service.

Generates SESSIONS sessions (as `usage_report.py` does: 5,000 people over 365 days), rolls
them up (usage and cost, as the services do), starts a real hub with the usage and cost
services on that database, with a per-person monthly budget for every group, and times:

- last month's cost by user through `api/v1/cost` (about 5,000 rows), median of --repeat,
  computed each time, and the same asked again (the service's shared answer);
- the same figures by one plain SQL GROUP BY over the raw sessions (the baseline), and
  the largest difference between the two per person (must be ~0: the figures are exact);
- the spawn-time budget check (`api/v1/budgets/check`, as the spawner asks it) for
  --checks people one after another, p50/p99, while another client keeps asking for the
  month's report; each answer's `used` is checked against the plain SQL spend of that
  person this month, from the raw sessions, up to the moment the answer is for (`as_of`).

Prints one JSON object. `--sessions 50000` for a quick run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import requests
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from common import as_remote_client, wait_for_service  # noqa: E402
from usage_report import generate  # noqa: E402  (the same generated history)

from twoi2c_hub.accounting.costs import CostBasis, roll_up_costs  # noqa: E402
from twoi2c_hub.accounting.db import make_engine, session_maker, upgrade  # noqa: E402
from twoi2c_hub.accounting.models import DAY_MS, HOUR_MS  # noqa: E402
from twoi2c_hub.accounting.rollups import roll_up  # noqa: E402
from twoi2c_hub.config import parse_config  # noqa: E402
from twoi2c_hub.localhub import LocalHub  # noqa: E402
from twoi2c_hub.paths import examples_dir  # noqa: E402

GiB = 1024**3
CPU, RAM, GPU = 0.031611, 0.004237, 0.95  # per core-hour, GiB-hour, GPU-hour

# a month's cost per person from the raw sessions, clipped to the window, requests charged
BASELINE = f"""
SELECT username,
       SUM((MIN(COALESCE(stopped_ms, :now), :e) - MAX(started_ms, :s)) / {HOUR_MS}.0
           * (COALESCE(cpu_guarantee, cpu_limit, 0) * {CPU}
              + COALESCE(mem_guarantee_bytes, mem_limit_bytes, 0) / {GiB}.0 * {RAM}
              + gpu_count * {GPU}))
FROM sessions
WHERE started_ms < :e AND (stopped_ms IS NULL OR stopped_ms > :s)
GROUP BY username
"""


def month_start(ms: int, months_back: int = 0) -> int:
    at = datetime.fromtimestamp(ms / 1000, tz=UTC)
    year, month = at.year, at.month - months_back
    while month < 1:
        year, month = year - 1, month + 12
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp() * 1000)


def report_load(api: str, token: str, last_month: tuple[int, int], stop, count) -> None:
    """Last month by user again and again, each window a second longer than the one before,
    so that no answer comes from the service's cache: a report always running, as a remote
    reader's client (`as_remote_client`)."""
    as_remote_client()
    session = requests.Session()
    session.headers["Authorization"] = f"token {token}"
    while not stop.is_set():
        count.value += 1
        window = f"{last_month[0] // 1000},{last_month[1] // 1000 + count.value}"
        session.get(f"{api}/cost", params={"window": window, "aggregate": "user"}, timeout=300)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--checks", type=int, default=500)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="twoi2c-cost-bench-"))
    database = work / "usage.sqlite"
    url = f"sqlite:///{database}"
    now_ms = int(time.time() * 1000)
    today = now_ms // DAY_MS * DAY_MS
    figures: dict = {"sessions": args.sessions, "users": args.users, "days": args.days}

    config = yaml.safe_load((examples_dir() / "demo-community.yaml").read_text())
    config["usage"] = {"database_url": url, "reconcile_interval": 3600}
    config["culling"] = {"enabled": False}
    config["cost"] = {"rollup_interval": 3600}
    config["pricing"] = {
        "currency": "USD",
        "prices": [{"effective": "2000-01-01", "cpu_core_hour": CPU, "memory_gib_hour": RAM, "gpu_hour": GPU}],
    }
    groups = [f"group{g}" for g in range(50)]
    config["budgets"] = {
        "budgets": [{"name": "monthly", "applies_to": "group", "names": groups, "limit": 1000, "period": "month"}]
    }
    (work / "community.yaml").write_text(yaml.safe_dump(config))
    community = parse_config(yaml.safe_dump(config))

    upgrade(url)
    began = time.perf_counter()
    generate(database, args.sessions, args.users, 50, 12, args.days, today)
    figures["generate_seconds"] = round(time.perf_counter() - began, 1)
    basis = CostBasis(community.pricing.to_pricing(), community.instance_catalog())
    engine = make_engine(url)
    with session_maker(engine)() as db:
        roll_up(db, now_ms)
        began = time.perf_counter()
        roll_up_costs(db, basis, now_ms)
        figures["cost_rollup_seconds"] = round(time.perf_counter() - began, 1)
    engine.dispose()
    with sqlite3.connect(database) as connection:
        connection.execute("ANALYZE")

    # the baseline, last month, and this month's spend per person for the budget checks
    last_month = (month_start(now_ms, 1), month_start(now_ms))
    this_month = (month_start(now_ms), now_ms)
    connection = sqlite3.connect(database)

    def baseline(window):
        return dict(connection.execute(BASELINE, {"s": window[0], "e": window[1], "now": now_ms}).fetchall())

    timings = []
    for _ in range(args.repeat):
        began = time.perf_counter()
        expected = baseline(last_month)
        timings.append((time.perf_counter() - began) * 1000)
    figures["baseline_last_month_by_user_ms"] = round(statistics.median(timings), 1)
    per_person = BASELINE.replace("GROUP BY username", "AND username = :who GROUP BY username")
    raw = sqlite3.connect(database, check_same_thread=False)  # the checks' baseline, kept open
    user_groups = dict(
        connection.execute(
            "SELECT DISTINCT s.username, g.group_name FROM sessions s JOIN session_groups g ON g.session_id = s.id"
        ).fetchall()
    )
    connection.close()

    token, check_token = secrets.token_hex(32), secrets.token_hex(32)
    extra = f"""
c.JupyterHub.services.append({{"name": "bench", "api_token": {token!r}}})
c.JupyterHub.load_roles.append({{"name": "bench", "services": ["bench"],
    "scopes": ["custom:cost:read-all", "access:services!service=cost", "read:services"]}})
for _s in c.JupyterHub.services:
    if _s["name"] in ("cost", "cost-checks"):  # the spawners' check token, known here to ask as they do
        _s["environment"]["TWOI2C_COST_CHECK_TOKEN"] = {check_token!r}
"""
    hub = LocalHub(work / "community.yaml", work / "hub", extra_config=extra)
    hub.start(timeout=180)
    try:
        api = f"{hub.url}/services/cost/api/v1"
        session = requests.Session()
        session.headers["Authorization"] = f"token {token}"
        wait_for_service(hub, "cost")
        params = {"window": f"{last_month[0] // 1000},{last_month[1] // 1000}", "aggregate": "user"}
        answer = session.get(f"{api}/cost", params=params, timeout=300)
        answer.raise_for_status()
        (rows,) = answer.json()["data"]
        figures["rows_last_month_by_user"] = len(rows)
        figures["max_difference_from_baseline"] = max(
            abs(rows.get(name, {}).get("totalCost", 0.0) - value) for name, value in expected.items()
        )
        timings, cached = [], []
        for repeat in range(1, args.repeat + 1):
            # each window a second longer: computed every time, not the service's cached answer
            fresh = {"window": f"{last_month[0] // 1000},{last_month[1] // 1000 + repeat}", "aggregate": "user"}
            began = time.perf_counter()
            session.get(f"{api}/cost", params=fresh, timeout=300).raise_for_status()
            timings.append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            session.get(f"{api}/cost", params=fresh, timeout=300).raise_for_status()  # the same again
            cached.append((time.perf_counter() - began) * 1000)
        figures["api_last_month_by_user_ms"] = round(statistics.median(timings), 1)
        figures["api_last_month_by_user_again_ms"] = round(statistics.median(cached), 1)
        figures["api_vs_baseline"] = round(
            figures["api_last_month_by_user_ms"] / figures["baseline_last_month_by_user_ms"], 3
        )

        # the spawn-time check, as the spawner asks it, alone and with a report running beside it
        # the spawner asks the service itself, not through the proxy
        service_url = session.get(f"{hub.url}/hub/api/services/cost-checks", timeout=30).json()["url"]
        check_url = f"{service_url.rstrip('/')}/services/cost-checks/api/v1/budgets/check"
        rng = random.Random(2)
        server = {"cpu_guarantee": 1.0, "mem_guarantee": 2 * GiB, "gpu_count": 0}
        checker = requests.Session()
        checker.headers["Authorization"] = f"token {check_token}"

        def checks(people) -> tuple[list[float], float]:
            latencies, worst = [], 0.0
            for person in people:
                body = {"username": person, "groups": [user_groups.get(person, "")], "server": server}
                began = time.perf_counter()
                response = checker.post(check_url, json=body, timeout=60)
                latencies.append((time.perf_counter() - began) * 1000)
                response.raise_for_status()
                data = response.json()["data"]
                used = data["budgets"][0]["used"] if data["budgets"] else 0.0
                # plain SQL over the raw sessions, this month, up to the check's own moment
                moment = {"s": this_month[0], "e": data["as_of"], "now": data["as_of"], "who": person}
                spent = dict(raw.execute(per_person, moment).fetchall()).get(person, 0.0)
                worst = max(worst, abs(used - spent))
            return latencies, worst

        quiet, _ = checks([f"user{rng.randrange(args.users)}" for _ in range(args.checks)])
        figures["check_quiet_p50_ms"] = round(percentile(quiet, 0.5), 2)
        figures["check_quiet_p99_ms"] = round(percentile(quiet, 0.99), 2)
        context = multiprocessing.get_context("spawn")
        stop, count = context.Event(), context.Value("i", 0)
        loader = context.Process(target=report_load, args=(api, token, last_month, stop, count))
        loader.start()
        time.sleep(1)
        latencies, worst = checks([f"user{rng.randrange(args.users)}" for _ in range(args.checks)])
        stop.set()
        loader.join()
        figures["reports_during_checks"] = count.value
        figures["check_p50_ms"] = round(percentile(latencies, 0.5), 2)
        figures["check_p99_ms"] = round(percentile(latencies, 0.99), 2)
        figures["check_max_difference_from_baseline"] = round(worst, 9)
    finally:
        hub.stop()
    figures["targets_met"] = {
        "month_by_user_at_most_0.1x_baseline": figures["api_vs_baseline"] <= 0.1,
        "check_p99_at_most_10ms": figures["check_p99_ms"] <= 10,
        "exact": max(figures["max_difference_from_baseline"], figures["check_max_difference_from_baseline"]) < 1e-6,
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
