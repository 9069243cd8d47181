"""A made-up usage history (sessions over ten days: some cross midnight, some run for
days, some still run) and its figures worked out here, independently, from the raw
events: the reference the usage reports are checked against."""

import random
from collections import defaultdict

import pytest

from twoi2c_hub.accounting.events import ServerStart, ServerStarted, ServerStopped
from twoi2c_hub.accounting.models import DAY_MS, HOUR_MS
from twoi2c_hub.accounting.recording import record

GiB = 1024**3
T0 = 20_000 * DAY_MS  # 2024-10-04T00:00Z
NOW = T0 + 10 * DAY_MS + 7 * HOUR_MS


def random_events(seed=7, count=300):
    """Sessions over ten days: some cross midnight, some run for days, some still run."""
    rng = random.Random(seed)
    profiles = ["cpu", "gpu", "big", None]
    events = []
    for _ in range(count):
        user = f"user{rng.randrange(12)}"
        start = T0 + rng.randrange(10 * DAY_MS)
        duration = rng.choice([0, rng.randrange(HOUR_MS), rng.randrange(8 * HOUR_MS), rng.randrange(3 * DAY_MS)])
        stop = start + duration if start + duration < NOW and rng.random() > 0.05 else None
        events.append(
            dict(
                start=ServerStart(
                    username=user,
                    server_name=rng.choice(["", "", "second"]),
                    started_ms=start,
                    profile=rng.choice(profiles),
                    cpu_guarantee=rng.choice([None, 0.5, 2.0]),
                    cpu_limit=rng.choice([None, 4.0]),
                    mem_guarantee_bytes=rng.choice([None, 2 * GiB]),
                    mem_limit_bytes=rng.choice([None, 8 * GiB]),
                    gpu_count=rng.choice([0, 0, 1, 2]),
                    groups=rng.sample(["students", "researchers", "staff"], rng.randrange(3)),
                ),
                stop=stop,
            )
        )
    return events


def record_all(db, events):
    record(db, [ServerStarted(event["start"]) for event in events])
    db.commit()
    record(
        db,
        [
            ServerStopped(
                e["start"].username, e["start"].server_name, e["stop"], "user", started_ms=e["start"].started_ms
            )
            for e in events
            if e["stop"] is not None
        ],
    )
    db.commit()


def expected(events, a, b, aggregate, username=None, now=NOW):
    """The figures, straight from the events: clip every session to [a, b)."""
    totals = defaultdict(lambda: [0, 0.0, 0.0, 0.0, 0.0])
    for event in events:
        s, stop = event["start"], event["stop"] if event["stop"] is not None else now
        if username and s.username != username:
            continue
        overlap = max(0, min(stop, b) - max(s.started_ms, a))
        touches = s.started_ms < b and stop > a or (a <= s.started_ms < b)
        if not touches:
            continue
        keys = {"user": [s.username], "profile": [s.profile or ""], "group": s.groups or [""]}[aggregate]
        hours = overlap / HOUR_MS
        for key in keys:
            row = totals[key]
            row[0] += 1 if a <= s.started_ms < b else 0
            row[1] += hours
            row[2] += hours * (s.cpu_guarantee or s.cpu_limit or 0)
            row[3] += hours * (s.mem_guarantee_bytes or s.mem_limit_bytes or 0) / GiB
            row[4] += hours * s.gpu_count
    return {k: v for k, v in totals.items()}


def assert_same(actual, wanted):
    assert set(actual) == set(wanted)
    for name, values in wanted.items():
        assert actual[name][0] == values[0], name
        assert actual[name][1:] == pytest.approx(values[1:], abs=1e-4), name
