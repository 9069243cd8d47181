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
import asyncio
import json
import multiprocessing
import random
import secrets
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import requests
import yaml
from tornado.httpclient import AsyncHTTPClient

sys.path.insert(0, str(Path(__file__).parent))
from common import as_remote_client, percentile, wait_for_service  # noqa: E402
from peer_usage_quotas import Peer, PeerUnavailable  # noqa: E402
from usage_report import generate  # noqa: E402  (the same generated history)

from twoi2c_hub.accounting.costs import CostBasis, roll_up_costs  # noqa: E402
from twoi2c_hub.accounting.db import make_engine, session_maker, upgrade  # noqa: E402
from twoi2c_hub.accounting.models import DAY_MS, HOUR_MS  # noqa: E402
from twoi2c_hub.accounting.rollups import roll_up  # noqa: E402
from twoi2c_hub.config import parse_config  # noqa: E402
from twoi2c_hub.localhub import LocalHub  # noqa: E402
from twoi2c_hub.paths import demo_config  # noqa: E402

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


PEER_LIMIT_GIB_HOURS = 500
# memory GiB-hours per person over [s, e), running sessions up to :now
MEMORY = f"""
SELECT username,
       SUM((MIN(COALESCE(stopped_ms, :now), :e) - MAX(started_ms, :s)) / {HOUR_MS}.0
           * COALESCE(mem_guarantee_bytes, mem_limit_bytes, 0) / {GiB}.0)
FROM sessions
WHERE started_ms < :e AND (stopped_ms IS NULL OR stopped_ms > :s) AND username = :who
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


async def at_once(check_url: str, authorization: str, people, size: int) -> list[float]:
    """Our check for `people`, `size` at once, from one event loop (as the peer's client
    asks: one process, no threads competing for the interpreter)."""
    client = AsyncHTTPClient(max_clients=size)
    latencies: list[float] = []

    async def one(name: str, its_groups: list[str]) -> None:
        body = json.dumps({"username": name, "groups": its_groups, "server": None})
        began = time.perf_counter()
        await client.fetch(check_url, method="POST", body=body, headers={"Authorization": authorization})
        latencies.append((time.perf_counter() - began) * 1000)

    for first in range(0, len(people), size):
        await asyncio.gather(*(one(name, its_groups) for name, its_groups in people[first : first + size]))
    client.close()
    return latencies


def compare_with_peer(work: Path, database: Path, people, groups, days, check_url, checker, now_ms) -> dict:
    """The same question (memory GiB-hours over the last `days` days, against 500) asked of
    our check and of the peer's, for the same people and history: latency one after another
    and 20 at once, and each answer against the raw sessions."""
    raw = sqlite3.connect(database, check_same_thread=False)

    def truth(name: str, at_ms: int, now: int) -> float:
        moment = {"s": at_ms - days * DAY_MS, "e": at_ms, "now": now, "who": name}
        return dict(raw.execute(MEMORY, moment).fetchall()).get(name, 0.0)

    def ours(person) -> tuple[float, float, bool]:
        """(latency, charged - true, whether the decision is what the true figure says)."""
        name, its_groups = person
        body = {"username": name, "groups": its_groups, "server": None}
        began = time.perf_counter()
        response = checker.post(check_url, json=body, timeout=60)
        latency = (time.perf_counter() - began) * 1000
        response.raise_for_status()
        data = response.json()["data"]
        (memory,) = [b for b in data["budgets"] if b["budget"] == "memory"]
        true = truth(name, data["as_of"], data["as_of"])
        right = (memory["action"] in ("deny", "stop")) == (true >= PEER_LIMIT_GIB_HOURS)
        return latency, memory["used"] - true, right

    result: dict = {"people": len(people), "days": days, "limit_gib_hours": PEER_LIMIT_GIB_HOURS}
    answers = [ours(p) for p in people]
    sequential = [latency for latency, _, _ in answers]
    concurrent = asyncio.run(at_once(check_url, checker.headers["Authorization"], people, 20))
    result["ours"] = {
        "sequential_p50_ms": round(percentile(sequential, 0.5), 2),
        "sequential_p99_ms": round(percentile(sequential, 0.99), 2),
        "20_at_once_p50_ms": round(percentile(concurrent, 0.5), 2),
        "20_at_once_p99_ms": round(percentile(concurrent, 0.99), 2),
        "max_difference_gib_hours": round(max(abs(d) for _, d, _ in answers), 6),
    }

    names = {name for name, _ in people}
    sessions = raw.execute(
        "SELECT id, username, COALESCE(mem_guarantee_bytes, mem_limit_bytes, 0), started_ms, stopped_ms FROM sessions "
        "WHERE (stopped_ms IS NULL OR stopped_ms > ?) ORDER BY id",
        (now_ms - (days + 1) * DAY_MS,),
    ).fetchall()
    peer = Peer(work / "peer", time.time())
    peer.work.mkdir()
    try:
        setup = peer.start([s for s in sessions if s[1] in names])
        history_end = int(peer.now_s) // 60 * 60 * 1000
        theirs = peer.enforce(people, groups, f"{PEER_LIMIT_GIB_HOURS}G", days)
        checked_at = int(time.time() * 1000)
        result["theirs"] = {
            **setup,
            "sequential_p50_ms": round(percentile(theirs["sequential_ms"], 0.5), 2),
            "sequential_p99_ms": round(percentile(theirs["sequential_ms"], 0.99), 2),
            "20_at_once_p50_ms": round(percentile(theirs["concurrent_ms"], 0.5), 2),
            "20_at_once_p99_ms": round(percentile(theirs["concurrent_ms"], 0.99), 2),
            "prometheus_rss_mb_after": peer.rss_mb(),
        }
    except PeerUnavailable as e:
        result["theirs"] = {"skipped": str(e)}
        return result
    finally:
        peer.stop()
    # exactness: the peer's history ends when it was written; its window ends when it asked
    wrong_charge, wrong_decision, worst = 0, 0, (0.0, "")
    for name, answer in theirs["answers"].items():
        true = truth(name, checked_at, history_end)
        charged = answer["used_gib_hours"]
        if abs(charged - true) > max(1.0, 0.01 * true):  # a minute a session is its sampling
            wrong_charge += 1
        if answer["allowed"] != (true < PEER_LIMIT_GIB_HOURS):
            wrong_decision += 1
        if charged - true > worst[0]:
            worst = (charged - true, name)
    result["theirs"].update(
        people_charged_more_than_1pct_off=wrong_charge,
        decisions_wrong=wrong_decision,
        worst_overcharge_gib_hours=round(worst[0], 1),
        worst_overcharged=worst[1],
    )
    result["ours"]["decisions_wrong"] = sum(not right for _, _, right in answers)
    return result


def targets_met(figures: dict) -> dict:
    """The targets, each True or False, or None where its comparison could not run (a peer that
    is not on this machine is reported as skipped, with the reason, under figures["peer"])."""
    theirs = figures.get("peer", {}).get("theirs", {})
    return {
        "month_by_user_at_most_0.1x_baseline": figures["api_vs_baseline"] <= 0.1,
        "check_p99_at_most_10ms": figures["check_p99_ms"] <= 10,
        "check_faster_than_the_peer": (
            figures["peer"]["ours"]["sequential_p99_ms"] < theirs["sequential_p99_ms"]
            if "sequential_p99_ms" in theirs
            else None
        ),
        "exact": max(figures["max_difference_from_baseline"], figures["check_max_difference_from_baseline"]) < 1e-6,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--checks", type=int, default=500)
    parser.add_argument(
        "--database", help="a history kept by an earlier run (--keep; its 'database' figure) to use again, unchanged"
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated history for --database")
    parser.add_argument("--peer-people", type=int, default=500, help="people in the peer comparison (0: none)")
    parser.add_argument("--peer-days", type=int, default=30)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="twoi2c-cost-bench-"))
    database = work / "usage.sqlite"
    url = f"sqlite:///{database}"
    now_ms = int(time.time() * 1000)
    today = now_ms // DAY_MS * DAY_MS
    figures: dict = {"sessions": args.sessions, "users": args.users, "days": args.days}

    config = demo_config()
    config["usage"] = {"database_url": url, "reconcile_interval": 3600}
    config["culling"] = {"enabled": False}
    config["cost"] = {"rollup_interval": 3600}
    config["pricing"] = {
        "currency": "USD",
        "prices": [{"effective": "2000-01-01", "cpu_core_hour": CPU, "memory_gib_hour": RAM, "gpu_hour": GPU}],
    }
    groups = [f"group{g}" for g in range(50)]
    # the peer comparison's people also have the peer's kind of quota: memory GiB-hours over
    # rolling days (user0, user1, ...: names that are prefixes of others, as real ones can be)
    peer_people = [f"user{i}" for i in range(min(args.peer_people, args.users))]
    config["budgets"] = {
        "budgets": [{"name": "monthly", "applies_to": "group", "names": groups, "limit": 1000, "period": "month"}]
        + (
            [
                {
                    "name": "memory",
                    "applies_to": "user",
                    "names": peer_people,
                    "unit": "memory_gib_hours",
                    "limit": PEER_LIMIT_GIB_HOURS,
                    "period": f"{args.peer_days}d",
                }
            ]  # fmt: skip
            if peer_people
            else []
        )
    }
    (work / "community.yaml").write_text(yaml.safe_dump(config))
    community = parse_config(yaml.safe_dump(config))

    if args.database:  # generated on an earlier day: the rollups catch up as the services start
        shutil.copyfile(args.database, database)
        figures["sessions"] = sqlite3.connect(database).execute("select count(*) from sessions").fetchone()[0]
    else:
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
    if args.keep:
        kept = Path(tempfile.gettempdir()) / f"twoi2c-cost-history-{args.sessions}.sqlite"
        shutil.copyfile(database, kept)
        figures["database"] = str(kept)
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
    all_groups: dict[str, set[str]] = {}
    for name, group in connection.execute(
        "SELECT DISTINCT s.username, g.group_name FROM sessions s JOIN session_groups g ON g.session_id = s.id"
    ):
        all_groups.setdefault(name, set()).add(group)
    user_groups = {name: min(found) for name, found in all_groups.items()}
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
        if peer_people:
            people = [(name, sorted(all_groups.get(name, []))) for name in peer_people]
            figures["peer"] = compare_with_peer(
                work, database, people, groups, args.peer_days, check_url, checker, now_ms
            )
    finally:
        hub.stop()
        shutil.rmtree(work, ignore_errors=True)
    figures["targets_met"] = targets_met(figures)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
