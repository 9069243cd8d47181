"""A made-up history of sessions (CPU, GPU and node-share servers, people in several
groups) across a price change, and what it costs worked out here from the sessions and
the price tables, apart from the code under test: the reference the cost reports, the
budgets, the bills and the archives are checked against."""

import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import pytest

from twoi2c_hub.accounting.events import ServerStart, ServerStarted, ServerStopped
from twoi2c_hub.accounting.models import DAY_MS, HOUR_MS
from twoi2c_hub.accounting.recording import record
from twoi2c_hub.catalog import INSTANCE_TYPES, InstancePrice, PriceTable, Pricing

GiB = 1024**3
T0 = 20_755 * DAY_MS  # 2026-10-29T00:00Z: the window crosses November's price change
NOW = T0 + 12 * DAY_MS + 5 * HOUR_MS
OCTOBER = PriceTable(
    effective=date(2026, 10, 1),
    cpu_core_hour=0.04,
    memory_gib_hour=0.005,
    gpu_hour={"nvidia-tesla-t4": 0.35, "*": 0.9},
    instances={"n2-highmem-4": InstancePrice(on_demand=0.24)},
)
NOVEMBER = PriceTable(  # from 2026-11-03: CPU dearer, the T4 cheaper, the node dearer
    effective=date(2026, 11, 3),
    cpu_core_hour=0.05,
    memory_gib_hour=0.005,
    gpu_hour={"nvidia-tesla-t4": 0.30, "*": 0.9},
    instances={"n2-highmem-4": InstancePrice(on_demand=0.32)},
)
PRICING = Pricing(currency="USD", tables=(OCTOBER, NOVEMBER))
GROUPS = ["students", "researchers", "staff"]


def random_sessions(seed=11, count=250):
    rng = random.Random(seed)
    sessions = []
    for i in range(count):
        start = T0 + rng.randrange(12 * DAY_MS)
        duration = rng.choice([0, rng.randrange(HOUR_MS), rng.randrange(9 * HOUR_MS), rng.randrange(3 * DAY_MS)])
        stop = start + duration if start + duration < NOW and rng.random() > 0.05 else None
        kind = rng.choice(["cpu", "gpu", "node"])
        resources = {
            "cpu": dict(cpu_guarantee=rng.choice([0.5, 2.0]), mem_guarantee_bytes=rng.choice([2, 8]) * GiB),
            "gpu": dict(
                cpu_guarantee=3.5,
                mem_guarantee_bytes=14 * GiB,
                gpu_count=1,
                gpu_type=rng.choice(["nvidia-tesla-t4", "nvidia-l4"]),
            ),
            "node": dict(cpu_guarantee=0.9, cpu_limit=3.7, mem_guarantee_bytes=6 * GiB, instance_type="n2-highmem-4"),
        }[kind]
        start_event = ServerStart(
            username=f"user{rng.randrange(9)}",
            server_name="" if i % 3 else "second",
            started_ms=start,
            profile=kind,
            groups=rng.sample(GROUPS, rng.randrange(4)),
            **resources,
        )
        sessions.append((start_event, stop))
    return sessions


def record_all(db, sessions):
    record(db, [ServerStarted(s) for s, _ in sessions])
    db.commit()
    record(db, [ServerStopped(s.username, s.server_name, stop, "user", s.started_ms) for s, stop in sessions if stop])
    db.commit()


def hourly(s: ServerStart, day: date, tables) -> tuple[float, float, float]:
    october, november = tables
    table = november if day >= november.effective else october
    if s.instance_type:  # OpenCost's split of the node's price, by the tables' ratios
        node = INSTANCE_TYPES[s.instance_type]
        price = table.instances[s.instance_type].on_demand
        ram = price / (node.cpu * table.cpu_core_hour / table.memory_gib_hour + node.memory_bytes / GiB)
        cpu = ram * table.cpu_core_hour / table.memory_gib_hour
    else:
        cpu, ram = table.cpu_core_hour, table.memory_gib_hour
    gpu = table.gpu_hour.get(s.gpu_type, table.gpu_hour["*"]) if s.gpu_count else 0.0
    return cpu * s.cpu_guarantee, ram * s.mem_guarantee_bytes / GiB, gpu * s.gpu_count


def expected(sessions, a, b, aggregate, rule="split", primary=(), tables=(OCTOBER, NOVEMBER), now=NOW):
    totals = defaultdict(lambda: [0.0, 0.0, 0.0])
    for s, stop in sessions:
        start, end = max(s.started_ms, a), min(stop if stop is not None else now, b)
        moment = datetime.fromtimestamp(start / 1000, tz=UTC)
        finish = datetime.fromtimestamp(end / 1000, tz=UTC)
        money = [0.0, 0.0, 0.0]
        while moment < finish:
            midnight = datetime.combine(moment.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
            hours = (min(midnight, finish) - moment).total_seconds() / 3600
            for i, part in enumerate(hourly(s, moment.date(), tables)):
                money[i] += hours * part
            moment = midnight
        if aggregate == "group":
            groups = sorted(s.groups)
            if not groups:
                shares = {"": 1.0}
            elif rule == "each":
                shares = dict.fromkeys(groups, 1.0)
            elif rule == "primary":
                shares = {next((g for g in primary if g in groups), groups[0]): 1.0}
            else:
                shares = dict.fromkeys(groups, 1 / len(groups))
        else:
            shares = {s.username if aggregate == "user" else s.profile: 1.0}
        if end > start:
            for name, share in shares.items():
                for i in range(3):
                    totals[name][i] += money[i] * share
    return dict(totals)


def assert_same(actual, wanted):
    actual = {k: v for k, v in actual.items() if any(abs(x) > 1e-12 for x in v[:3])}
    assert set(actual) == set(wanted)
    for name, values in wanted.items():
        assert actual[name][:3] == pytest.approx(values, abs=1e-6), name
