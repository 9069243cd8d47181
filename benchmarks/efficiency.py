"""What measuring servers costs, and how fast the efficiency report reads, against plain SQL.

- Sampling: --servers real process trees (a shell with two children each, as a server and
  its kernel), sampled every --interval seconds for --minutes, the way the usage service
  does it (`ProcessTrees.sample`, one pass over /proc a round, and each sample added to its
  session in SQLite). Reports the CPU time a round takes, the share of one core that is
  at that interval, and how much the process's memory grew.
- The report: --sessions measured sessions over a year, rolled up as the usage service
  rolls them up (daily rollups of usage and of measured use; the time it takes is
  reported, not counted in the report's), then `api/v1/efficiency`'s computation
  (`accounting.use.efficiency`: whole days from the rollups, partial days from the
  sessions) by user, group and profile over 30 days -- whole days, and 30 days with a
  partial day at each end -- each against the same figures by one plain SQL query over
  every session (the baseline, median of --repeat); the figures are checked equal.

Prints one JSON object with `targets_met` (the issue's: sampling ≤ 1 % of a core at 30 s,
memory growth ≤ 50 MB, reports ≤ 0.1x the plain SQL). `--servers 20 --minutes 0.05
--interval 0.5 --sessions 2000` for a quick run.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import median_ms  # noqa: E402

from twoi2c_hub.accounting.db import make_engine, session_maker, upgrade  # noqa: E402
from twoi2c_hub.accounting.models import DAY_MS, HOUR_MS, ServerSession, SessionGroup, SessionUse  # noqa: E402
from twoi2c_hub.accounting.rollups import roll_up  # noqa: E402
from twoi2c_hub.accounting.sizing import right_sizing  # noqa: E402
from twoi2c_hub.accounting.use import add_sample, efficiency  # noqa: E402
from twoi2c_hub.services.usage.measuring import ProcessTrees  # noqa: E402

GiB = 1024**3

# the report's figures by one query over the sessions and their use (a session's measured
# figures spread evenly over its time, as the report does)
PLAIN_SQL = """
SELECT {key} AS name, COUNT(*), SUM(u.measured_ms * f), SUM(u.cpu_core_ms * f),
       SUM(COALESCE(s.cpu_guarantee, s.cpu_limit, 0) * u.measured_ms * f), SUM(u.mem_byte_ms * f),
       SUM(COALESCE(s.mem_guarantee_bytes, s.mem_limit_bytes, 0) * u.measured_ms * f)
FROM (SELECT s.*, (MIN(COALESCE(s.stopped_ms, u.last_sample_ms), :e) - MAX(s.started_ms, :s)) * 1.0
             / MAX(1, COALESCE(s.stopped_ms, u.last_sample_ms) - s.started_ms) AS f
      FROM sessions s JOIN session_use u ON u.session_id = s.id
      WHERE s.started_ms < :e AND COALESCE(s.stopped_ms, u.last_sample_ms) > :s) s
JOIN session_use u ON u.session_id = s.id {join}
WHERE s.f > 0 AND u.measured_ms > 0
GROUP BY name
"""
KEYS = {
    "user": ("s.username", ""),
    "profile": ("COALESCE(s.profile, '')", ""),
    "group": ("g.group_name", "JOIN session_groups g ON g.session_id = s.id"),
}


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sampling(args, url: str, now_ms: int) -> dict:
    """Start the servers, record their sessions, sample them for the time asked."""
    servers = [
        subprocess.Popen(["sh", "-c", "sleep 3600 & sleep 3600 & wait"], start_new_session=True)
        for _ in range(args.servers)
    ]
    engine = make_engine(url)
    db_session = session_maker(engine)
    try:
        with db_session() as db:
            db.add_all(
                ServerSession(username=f"person{i}", server_name="", started_ms=now_ms - 60_000, profile="cpu",
                              cpu_guarantee=0.5, mem_guarantee_bytes=2 * GiB)
                for i in range(args.servers)
            )  # fmt: skip
            db.commit()
            ids = {s.username: s.id for s in db.query(ServerSession)}
        pids = {(f"person{i}", "", now_ms - 60_000): p.pid for i, p in enumerate(servers)}
        time.sleep(0.5)  # the children started
        trees = ProcessTrees()
        rounds, cpu, wall, rss_before = [], [], [], rss_mb()
        deadline = time.monotonic() + args.minutes * 60
        while True:
            began_cpu, began = time.process_time(), time.perf_counter()
            samples = trees.sample(pids, int(time.time() * 1000))
            with db_session() as db:
                for (username, _, _), sample in samples.items():
                    add_sample(db, ids[username], sample)
                db.commit()
            cpu.append(time.process_time() - began_cpu)
            wall.append(time.perf_counter() - began)
            rounds.append(len(samples))
            if time.monotonic() + args.interval > deadline:
                break
            time.sleep(args.interval)
        with db_session() as db:
            measured = db.query(SessionUse).filter(SessionUse.samples >= len(rounds)).count()
    finally:
        for server in servers:
            subprocess.run(["pkill", "-KILL", "-s", str(server.pid)], check=False)
            server.wait()
        engine.dispose()
    per_round = statistics.median(cpu)
    return {
        "servers": args.servers,
        "processes_per_server": 3,
        "rounds": len(rounds),
        "servers_measured_every_round": measured,
        "round_cpu_ms_median": round(per_round * 1000, 2),
        "round_wall_ms_median": round(statistics.median(wall) * 1000, 2),
        "cpu_share_of_a_core_at_30s": round(per_round / 30, 5),
        "rss_growth_mb": round(rss_mb() - rss_before, 1),
    }


def history(url: str, sessions: int, users: int, now_ms: int, seed: int = 3) -> None:
    """A year of measured sessions, written straight into the tables."""
    rng = random.Random(seed)
    engine = make_engine(url)
    with engine.begin() as connection:
        start = now_ms - 365 * DAY_MS
        for first in range(0, sessions, 20_000):
            rows, groups, uses = [], [], []
            for i in range(first, min(sessions, first + 20_000)):
                began = start + rng.randrange(0, 365 * DAY_MS)
                length = rng.randrange(10 * 60_000, 8 * HOUR_MS)
                measured = int(length * rng.uniform(0.5, 1.0))
                rows.append({"id": i + 1, "username": f"user{rng.randrange(users)}", "server_name": "",
                             "profile": f"profile{rng.randrange(12)}", "cpu_guarantee": rng.choice([0.5, 1, 2]),
                             "mem_guarantee_bytes": rng.choice([2, 4, 8, 16]) * GiB, "gpu_count": 0,
                             "started_ms": began, "stopped_ms": began + length, "duration_ms": length,
                             "source": "event", "rolled_up": False, "cost_rolled_up": False})  # fmt: skip
                groups.append({"session_id": i + 1, "group_name": f"group{rng.randrange(50)}"})
                uses.append({"session_id": i + 1, "samples": 2, "first_sample_ms": began,
                             "last_sample_ms": began + length, "measured_ms": measured,
                             "cpu_core_ms": measured * rng.uniform(0, 1.5), "cpu_seconds_at_last": 0.0,
                             "cpu_peak_cores": 1.5, "mem_byte_ms": measured * rng.uniform(0.2, 6) * GiB,
                             "mem_peak_bytes": 6 * GiB})  # fmt: skip
            connection.execute(ServerSession.__table__.insert(), rows)
            connection.execute(SessionGroup.__table__.insert(), groups)
            connection.execute(SessionUse.__table__.insert(), uses)
    engine.dispose()


def same_figures(ours: list[dict], plain: list) -> None:
    """The report's figures are the plain SQL's (checked, not only timed)."""
    assert {r["name"]: r["sessions"] for r in ours} == {row[0]: row[1] for row in plain}
    for row, (_, _, measured, cpu_used, cpu_asked, ram_used, ram_asked) in zip(ours, sorted(plain), strict=True):
        assert math.isclose(row["measuredHours"], measured / HOUR_MS, rel_tol=1e-9)
        assert math.isclose(row["cpuEfficiency"], cpu_used / cpu_asked, rel_tol=1e-9)
        assert math.isclose(row["ramEfficiency"], ram_used / ram_asked, rel_tol=1e-9)


def reports(args, url: str, now_ms: int) -> dict:
    began = time.perf_counter()
    history(url, args.sessions, args.users, now_ms)
    figures = {"sessions": args.sessions, "generate_seconds": round(time.perf_counter() - began, 1)}
    engine = make_engine(url)
    with session_maker(engine)() as db:
        began = time.perf_counter()
        roll_up(db, now_ms)
        figures["rollup_seconds"] = round(time.perf_counter() - began, 1)
        connection = db.connection().connection.driver_connection
        connection.execute("ANALYZE")
        windows = {
            "30d": (now_ms - 30 * DAY_MS, now_ms),
            "30d_partial_days": (now_ms - 30 * DAY_MS - 9 * HOUR_MS, now_ms - 3 * HOUR_MS),
        }
        for label, window in windows.items():
            for aggregate, (key, join) in KEYS.items():
                sql = PLAIN_SQL.format(key=key, join=join)
                bounds = {"s": window[0], "e": window[1]}
                same_figures(efficiency(db, *window, aggregate), connection.execute(sql, bounds).fetchall())
                ours = median_ms(lambda a=aggregate, w=window: efficiency(db, *w, a), args.repeat)
                plain = median_ms(lambda s=sql, b=bounds: connection.execute(s, b).fetchall(), args.repeat)
                figures[f"report_{label}_by_{aggregate}_ms"] = ours
                figures[f"plain_sql_{label}_by_{aggregate}_ms"] = plain
                figures[f"report_vs_plain_sql_{label}_by_{aggregate}"] = round(ours / plain, 3)
        # right-sizing reads each session started in the window (its percentiles need
        # every peak): timed for the record, no target
        window = windows["30d"]
        figures["right_sizing_30d_ms"] = median_ms(lambda: right_sizing(db, *window), args.repeat)
    engine.dispose()
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=300)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--interval", type=float, default=30)
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="twoi2c-efficiency-"))
    now_ms = int(time.time() * 1000) // DAY_MS * DAY_MS
    figures: dict = {}
    url = f"sqlite:///{work / 'sampled.sqlite'}"
    upgrade(url)
    figures["sampling"] = sampling(args, url, now_ms)
    url = f"sqlite:///{work / 'history.sqlite'}"
    upgrade(url)
    figures["reports"] = reports(args, url, now_ms)
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    ratios = [v for k, v in figures["reports"].items() if k.startswith("report_vs_plain_sql")]
    figures["targets_met"] = {
        "sampling_at_most_1_percent_of_a_core": figures["sampling"]["cpu_share_of_a_core_at_30s"] <= 0.01,
        "every_server_measured_every_round": figures["sampling"]["servers_measured_every_round"] == args.servers,
        "sampling_memory_growth_at_most_50mb": figures["sampling"]["rss_growth_mb"] <= 50,
        "reports_at_most_a_tenth_of_plain_sql": all(r <= 0.1 for r in ratios),
    }
    print(json.dumps(figures))
    return 0 if all(figures["targets_met"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
