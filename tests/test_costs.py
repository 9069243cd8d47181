"""What sessions cost, on SQLite and PostgreSQL, recomputed here from the raw sessions and
the price tables: every multi-group rule, a price change mid-month, part of history
rolled up, and the rollups computed again when the prices change."""

import random
from collections import defaultdict
from datetime import UTC, date, datetime

import pytest
from cost_figures import NOVEMBER, NOW, OCTOBER, PRICING, T0, GiB, assert_same, expected, random_sessions, record_all

from twoi2c_hub.accounting.cost_reports import cost, cost_allocation
from twoi2c_hub.accounting.costs import CostBasis, SessionCoster, roll_up_costs
from twoi2c_hub.accounting.events import ServerStart, ServerStarted, ServerStopped
from twoi2c_hub.accounting.models import DAY_MS, HOUR_MS
from twoi2c_hub.accounting.recording import record
from twoi2c_hub.accounting.rollups import roll_up
from twoi2c_hub.accounting.spending import UNITS, PersonHistory
from twoi2c_hub.catalog import INSTANCE_TYPES, PriceTable, Pricing

WINDOWS = [
    (T0, T0 + 12 * DAY_MS),  # whole days, across the price change
    (T0 + 5 * HOUR_MS, T0 + 7 * DAY_MS + 3 * HOUR_MS),  # partial days at both edges
    (T0 + 6 * DAY_MS + HOUR_MS, T0 + 6 * DAY_MS + 5 * HOUR_MS),  # inside one day
    (T0 + 11 * DAY_MS, NOW + DAY_MS),  # running sessions count until now
]


@pytest.mark.parametrize("aggregate", ["user", "group", "profile"])
def test_cost_matches_the_sessions_and_the_prices_before_and_after_rollup(db, aggregate):
    sessions = random_sessions()
    record_all(db, sessions)
    basis = CostBasis(PRICING, INSTANCE_TYPES)
    for a, b in WINDOWS:
        assert_same(cost(db, basis, a, b, aggregate, NOW), expected(sessions, a, b, aggregate))
    roll_up_costs(db, basis, now_ms=T0 + 6 * DAY_MS)  # part of history
    for a, b in WINDOWS:
        assert_same(cost(db, basis, a, b, aggregate, NOW), expected(sessions, a, b, aggregate))
    assert roll_up_costs(db, basis, now_ms=NOW) > 0  # the rest
    for a, b in WINDOWS:
        assert_same(cost(db, basis, a, b, aggregate, NOW), expected(sessions, a, b, aggregate))


@pytest.mark.parametrize("rule, primary", [("split", ()), ("each", ()), ("primary", ("staff", "researchers"))])
def test_each_rule_for_people_in_several_groups(db, rule, primary):
    sessions = random_sessions(seed=5)
    record_all(db, sessions)
    basis = CostBasis(PRICING, INSTANCE_TYPES, group_rule=rule, primary_groups=primary)
    roll_up_costs(db, basis, now_ms=T0 + 8 * DAY_MS)
    for a, b in WINDOWS:
        by_group = cost(db, basis, a, b, "group", NOW)
        assert_same(by_group, expected(sessions, a, b, "group", rule, primary))
        everyone = sum(sum(v[:3]) for v in cost(db, basis, a, b, "user", NOW).values())
        groups_total = sum(sum(v[:3]) for v in by_group.values())
        if rule == "each":
            assert groups_total >= everyone - 1e-9  # a person in two groups counts in both
        else:
            assert groups_total == pytest.approx(everyone, abs=1e-6)  # the groups add up to the hub


def test_new_prices_recompute_the_rolled_up_history(db):
    sessions = random_sessions(seed=3)
    record_all(db, sessions)
    old = CostBasis(PRICING, INSTANCE_TYPES)
    roll_up_costs(db, old, now_ms=NOW)
    a, b = WINDOWS[0]
    before = cost(db, old, a, b, "user", NOW)
    # the operator corrects October's CPU price after the fact
    corrected = PriceTable(**{**OCTOBER.__dict__, "cpu_core_hour": 0.08})
    new = CostBasis(Pricing(currency="USD", tables=(corrected, NOVEMBER)), INSTANCE_TYPES)
    roll_up_costs(db, new, now_ms=NOW)
    after = cost(db, new, a, b, "user", NOW)
    assert sum(v[0] for v in after.values()) > sum(v[0] for v in before.values())
    assert_same(after, expected(sessions, a, b, "user", tables=(corrected, NOVEMBER)))


def test_sessions_before_any_price_are_counted_as_unpriced(db):
    early = ServerStart(username="ann", server_name="", started_ms=T0 - 40 * DAY_MS, cpu_guarantee=1.0)
    record(db, [ServerStarted(early)])
    record(db, [ServerStopped("ann", "", early.started_ms + 3 * HOUR_MS, "user", early.started_ms)])
    db.commit()
    basis = CostBasis(PRICING, INSTANCE_TYPES)
    figures = cost(db, basis, T0 - 41 * DAY_MS, T0, "user", NOW)
    assert figures["ann"] == pytest.approx([0.0, 0.0, 0.0, 3.0])


def test_allocation_rows_put_usage_and_cost_side_by_side(db):
    sessions = random_sessions(seed=2, count=60)
    record_all(db, sessions)
    basis = CostBasis(PRICING, INSTANCE_TYPES)
    rows = cost_allocation(db, basis, T0, T0 + 12 * DAY_MS, "profile", NOW, step="1w")
    wanted = expected(sessions, T0, T0 + 7 * DAY_MS, "profile")
    first_week = {r["name"]: r for r in rows if r["window"]["start"] == "2026-10-29T00:00:00.000Z"}
    for name, (cpu, ram, gpu) in wanted.items():
        row = first_week[name]
        assert (row["cpu_cost"], row["ram_cost"], row["gpu_cost"]) == pytest.approx((cpu, ram, gpu), abs=1e-5)
        assert row["total_cost"] == pytest.approx(cpu + ram + gpu, abs=1e-5)
        assert row["server_hours"] > 0
    totals = [r["total_cost"] for r in rows if r["window"]["start"] == "2026-10-29T00:00:00.000Z"]
    assert totals == sorted(totals, reverse=True)


def test_whole_months_split():
    from twoi2c_hub.accounting.models import first_day_of, month_of, whole_months

    oct1, nov1, dec1 = (int(datetime(2026, m, 1, tzinfo=UTC).timestamp()) // 86_400 for m in (10, 11, 12))
    assert month_of(oct1) == 2026 * 12 + 9 and first_day_of(month_of(oct1)) == oct1
    assert whole_months(oct1, dec1) == (range(2026 * 12 + 9, 2026 * 12 + 11), [])
    assert whole_months(oct1 + 3, dec1 + 2) == (
        range(2026 * 12 + 10, 2026 * 12 + 11),
        [(oct1 + 3, nov1), (dec1, dec1 + 2)],
    )
    assert whole_months(oct1 + 3, nov1 + 5) == (range(0), [(oct1 + 3, nov1 + 5)])
    assert whole_months(nov1, nov1) == (range(0), [])


def test_reports_over_whole_months_read_the_monthly_rollups_and_agree(db):
    """Three months of sessions; windows with whole months inside, by user (usage and cost)."""
    from usage_figures import assert_same as same_usage
    from usage_figures import expected as expected_usage

    from twoi2c_hub.accounting.reports import usage
    from twoi2c_hub.accounting.rollups import roll_up

    rng = random.Random(4)
    aug1 = int(datetime(2026, 8, 1, tzinfo=UTC).timestamp() * 1000)
    now = int(datetime(2026, 11, 20, tzinfo=UTC).timestamp() * 1000)
    sessions = []
    for i in range(300):
        start = aug1 + rng.randrange(now - aug1 - DAY_MS)
        stop = min(now - 1, start + rng.randrange(3 * DAY_MS)) if rng.random() > 0.05 else None
        s = ServerStart(username=f"u{rng.randrange(12)}", server_name=str(i), started_ms=start, profile="p",
                        cpu_guarantee=rng.choice([0.5, 2.0]), mem_guarantee_bytes=rng.choice([1, 4]) * GiB)  # fmt: skip
        sessions.append((s, stop))
    record_all(db, sessions)
    since_january = PriceTable(**{**OCTOBER.__dict__, "effective": date(2026, 1, 1)})
    tables = (since_january, NOVEMBER)
    basis = CostBasis(Pricing(currency="USD", tables=tables), INSTANCE_TYPES)
    sep1, oct1, nov1 = (int(datetime(2026, m, 1, tzinfo=UTC).timestamp() * 1000) for m in (9, 10, 11))
    windows = [(sep1, nov1), (sep1 - 5 * DAY_MS - 3 * HOUR_MS, oct1 + 2 * DAY_MS + HOUR_MS), (aug1, now + DAY_MS)]
    events = [{"start": s, "stop": stop} for s, stop in sessions]
    for rolled_until in (None, oct1, now):
        if rolled_until is not None:
            roll_up(db, now_ms=rolled_until)
            roll_up_costs(db, basis, now_ms=rolled_until)
        for a, b in windows:
            assert_same(cost(db, basis, a, b, "user", now), expected(sessions, a, b, "user", tables=tables, now=now))
            same_usage(usage(db, a, b, "user", now), expected_usage(events, a, b, "user", now=now))


def hours_of(sessions, a, b, now=NOW) -> dict[str, list[float]]:
    """user -> [server, CPU core, memory GiB, GPU] hours in [a, b), from the sessions."""
    found = defaultdict(lambda: [0.0] * 4)
    for s, stop in sessions:
        overlap = max(0, min(stop if stop is not None else now, b) - max(s.started_ms, a)) / HOUR_MS
        cpu = s.cpu_guarantee or s.cpu_limit or 0.0
        for i, value in enumerate((1, cpu, (s.mem_guarantee_bytes or 0) / GiB, s.gpu_count or 0)):
            found[s.username][i] += overlap * value
    return found


def test_one_persons_spending_is_what_the_sessions_and_prices_say(db):
    """The budget check's own reading (few queries, one person) against the figures worked
    out here, before, during and after the rollups; running sessions count until now."""
    sessions = random_sessions(seed=3)
    record_all(db, sessions)
    coster = SessionCoster(CostBasis(PRICING, INSTANCE_TYPES))
    units = frozenset(UNITS)
    starts = [T0, T0 + 5 * HOUR_MS, T0 + 11 * DAY_MS + HOUR_MS, NOW - HOUR_MS]

    def check():
        for a in starts:
            money = expected(sessions, a, NOW, "user")
            hours = hours_of(sessions, a, NOW)
            for user in (f"user{i}" for i in range(9)):
                got = PersonHistory(db, coster, user, a, NOW, units).spent(a)
                # read once from the first start, worked out for a later one (a rolling reset)
                assert PersonHistory(db, coster, user, T0, NOW, units).spent(a) == pytest.approx(got, abs=1e-9)
                assert got["money"] == pytest.approx(sum(money.get(user, [0.0])), abs=1e-6), (user, a)
                assert [got[u] for u in UNITS[1:]] == pytest.approx(hours[user], abs=1e-6), (user, a)

    check()
    roll_up(db, T0 + 6 * DAY_MS)  # part of history in the usage rollups
    roll_up_costs(db, coster.basis, now_ms=T0 + 8 * DAY_MS)  # a different part in the cost rollups
    check()
    roll_up(db, NOW)
    roll_up_costs(db, coster.basis, now_ms=NOW)
    check()
