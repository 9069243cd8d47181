"""The accounting data layer on SQLite and on a real PostgreSQL: sessions recorded once,
and every figure recomputed here, independently, from the raw events."""

import pytest
from sqlalchemy import func, select
from usage_figures import NOW, T0, assert_same, expected, random_events, record_all

from twoi2c_hub.accounting.activity import active_users, sessions
from twoi2c_hub.accounting.db import make_engine, session_maker
from twoi2c_hub.accounting.events import GroupsChanged, ServerStart, ServerStarted, ServerStopped
from twoi2c_hub.accounting.models import DAY_MS, HOUR_MS, ServerSession
from twoi2c_hub.accounting.recording import groups_at, record
from twoi2c_hub.accounting.reports import allocation
from twoi2c_hub.accounting.rollups import roll_up


def as_totals(rows):
    return {
        r["name"]: [r["sessions"], r["server_hours"], r["cpu_core_hours"], r["memory_gib_hours"], r["gpu_hours"]]
        for r in rows
    }


WINDOWS = [
    (T0, T0 + 10 * DAY_MS),  # whole days
    (T0 + 5 * HOUR_MS, T0 + 7 * DAY_MS + 3 * HOUR_MS),  # partial days at both edges
    (T0 + 2 * DAY_MS + HOUR_MS, T0 + 2 * DAY_MS + 5 * HOUR_MS),  # inside one day
    (T0 + 9 * DAY_MS, NOW + DAY_MS),  # into the future: running sessions count until now
]


@pytest.mark.parametrize("aggregate", ["user", "group", "profile"])
def test_allocation_matches_the_raw_events_before_and_after_rollup(db, aggregate):
    events = random_events()
    record_all(db, events)
    for a, b in WINDOWS:
        assert_same(as_totals(allocation(db, a, b, aggregate, NOW)), expected(events, a, b, aggregate))
    # roll up part of history (what closed before day 6), then all of it: same figures
    roll_up(db, now_ms=T0 + 6 * DAY_MS)
    for a, b in WINDOWS:
        assert_same(as_totals(allocation(db, a, b, aggregate, NOW)), expected(events, a, b, aggregate))
    assert roll_up(db, now_ms=NOW) > 0
    for a, b in WINDOWS:
        assert_same(as_totals(allocation(db, a, b, aggregate, NOW)), expected(events, a, b, aggregate))


def test_a_persons_own_figures_and_daily_steps(db):
    events = random_events(seed=11)
    record_all(db, events)
    roll_up(db, now_ms=NOW)
    a, b = T0 + 3 * HOUR_MS, T0 + 4 * DAY_MS
    for aggregate in ("user", "profile", "group"):
        rows = allocation(db, a, b, aggregate, NOW, username="user3")
        assert_same(as_totals(rows), expected(events, a, b, aggregate, username="user3"))
    daily = allocation(db, T0, T0 + 3 * DAY_MS, "user", NOW, step="1d")
    for day in range(3):
        start = T0 + day * DAY_MS
        rows = [r for r in daily if r["window"]["start"] == allocation_iso(start)]
        assert_same(as_totals(rows), expected(events, start, start + DAY_MS, "user"))


def allocation_iso(ms):
    from twoi2c_hub.accounting.opencost import iso

    return iso(ms)


def test_the_same_start_and_stop_told_twice_are_recorded_once(db):
    start = ServerStarted(
        ServerStart(username="ada", server_name="", started_ms=T0, profile="cpu", groups=["students"])
    )
    created = record(db, [start]).sessions_opened
    again = record(db, [start], source="reconciled").sessions_opened
    assert (created, again) == (1, 0)
    record(db, [ServerStopped("ada", "", T0 + HOUR_MS, "user")])
    record(db, [ServerStopped("ada", "", T0 + 2 * HOUR_MS, "culler")])  # a late duplicate changes nothing
    db.commit()
    assert db.scalar(select(func.count()).select_from(ServerSession)) == 1
    (row,) = sessions(db)
    assert (row["stopped"], row["stop_reason"], row["groups"]) == ("2024-10-04T01:00:00.000Z", "user", ["students"])


def test_an_exact_stop_replaces_a_reconciled_one(db):
    record(db, [ServerStarted(ServerStart(username="ada", server_name="", started_ms=T0))], source="reconciled")
    record(db, [ServerStopped("ada", "", T0 + 2 * HOUR_MS, "reconciled")])
    record(db, [ServerStopped("ada", "", T0 + HOUR_MS, "culler", started_ms=T0)])
    db.commit()
    (row,) = sessions(db)
    assert (row["stopped"], row["stop_reason"]) == ("2024-10-04T01:00:00.000Z", "culler")


def test_membership_is_dated(db):
    record(db, [GroupsChanged("ada", T0, groups=frozenset(["students"]))])
    record(db, [GroupsChanged("ada", T0 + DAY_MS, added=frozenset(["researchers"]))])
    record(db, [GroupsChanged("ada", T0 + 2 * DAY_MS, removed=frozenset(["students"]))])
    db.commit()
    assert groups_at(db, "ada", T0 + HOUR_MS) == {"students"}
    assert groups_at(db, "ada", T0 + DAY_MS + HOUR_MS) == {"students", "researchers"}
    assert groups_at(db, "ada", T0 + 3 * DAY_MS) == {"researchers"}
    assert groups_at(db, "ada", T0 - 1) == set()


def test_active_users_count_distinct_people_per_day_week_and_month(db):
    events = random_events(seed=3)
    record_all(db, events)
    roll_up(db, now_ms=T0 + 5 * DAY_MS)
    counts = active_users(db, T0, T0 + 10 * DAY_MS, NOW)
    for entry, day in zip(counts, range(10)):
        for name, days in (("daily", 1), ("weekly", 7), ("monthly", 30)):
            a, b = T0 + (day - days + 1) * DAY_MS, T0 + (day + 1) * DAY_MS
            people = {
                e["start"].username
                for e in events
                if e["start"].started_ms < b
                and (e["stop"] if e["stop"] is not None else NOW) > a
                or a <= e["start"].started_ms < b
            }
            assert entry[name] == len(people), (day, name)


def test_sessions_filters_and_paging(db):
    events = random_events(seed=5, count=60)
    record_all(db, events)
    everyone = []
    after = None
    while True:
        page = sessions(db, limit=7, after_id=after)
        if not page:
            break
        everyone.extend(page)
        after = page[-1]["id"]
    assert len(everyone) == 60
    running = sessions(db, state="running", limit=1000)
    assert len(running) == sum(e["stop"] is None for e in events)
    students = sessions(db, group="students", limit=1000)
    assert len(students) == sum("students" in e["start"].groups for e in events)


def test_the_migrations_build_exactly_the_models(database_url):
    """A database migrated with the shipped Alembic scripts has every table, column and
    index the models declare (alembic check finds nothing to generate)."""
    from alembic import command

    from twoi2c_hub.accounting.db import alembic_config

    command.check(alembic_config(database_url))


@pytest.mark.parametrize("aggregate", ["user", "group", "profile"])
def test_leaders_and_the_rest_collapsed_add_up_to_everyone(db, aggregate):
    """What the admin charts ask: the top names' figures, and one row for all the others."""
    from twoi2c_hub.accounting.reports import NameFilter

    events = random_events(seed=11)
    record_all(db, events)
    roll_up(db, now_ms=T0 + 6 * DAY_MS)  # part rolled up, part not: both paths
    for a, b in WINDOWS:
        wanted = expected(events, a, b, aggregate)
        leaders = frozenset(sorted(wanted, key=lambda n: -wanted[n][1])[:3])
        top = as_totals(allocation(db, a, b, aggregate, NOW, names=NameFilter(leaders)))
        assert_same(top, {n: v for n, v in wanted.items() if n in leaders})
        rest = as_totals(allocation(db, a, b, aggregate, NOW, names=NameFilter(leaders, False, "others")))
        others = [sum(v[i] for n, v in wanted.items() if n not in leaders) for i in range(5)]
        if any(others):
            assert_same(rest, {"others": others})
        else:
            assert rest == {}


def test_a_report_with_too_many_rows_is_refused(db):
    record_all(db, random_events(seed=3))
    rows = allocation(db, T0, T0 + 10 * DAY_MS, "user", NOW, step="1d")
    with pytest.raises(ValueError, match=f"more than {len(rows) - 1} rows"):
        allocation(db, T0, T0 + 10 * DAY_MS, "user", NOW, step="1d", max_rows=len(rows) - 1)
    assert allocation(db, T0, T0 + 10 * DAY_MS, "user", NOW, step="1d", max_rows=len(rows)) == rows


@pytest.mark.parametrize("aggregate", ["user", "group", "profile"])
def test_one_persons_figures_from_the_per_user_rollups(db, aggregate):
    events = random_events(seed=5)
    record_all(db, events)
    roll_up(db, now_ms=T0 + 6 * DAY_MS)  # part rolled up, part not
    for a, b in WINDOWS:
        for person in ("user0", "user4", "user9", "nobody"):
            rows = allocation(db, a, b, aggregate, NOW, username=person)
            assert_same(as_totals(rows), expected(events, a, b, aggregate, username=person))


def test_upgrading_to_per_user_rollups_rebuilds_every_rollup(tmp_path):
    from alembic import command

    from twoi2c_hub.accounting.db import alembic_config

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    command.upgrade(alembic_config(url), "0001")
    events = random_events(seed=9, count=60)
    engine = make_engine(url)
    with engine.begin() as connection:  # what 0001 held: sessions already counted in its rollups
        for e in events:
            s = e["start"]
            connection.exec_driver_sql(
                "INSERT INTO sessions (username, server_name, profile, started_ms, stopped_ms, duration_ms,"
                " cpu_guarantee, cpu_limit, mem_guarantee_bytes, mem_limit_bytes, gpu_count, source, rolled_up)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,'event',1)",
                (
                    s.username,
                    s.server_name,
                    s.profile,
                    s.started_ms,
                    e["stop"],
                    None if e["stop"] is None else e["stop"] - s.started_ms,
                    s.cpu_guarantee,
                    s.cpu_limit,
                    s.mem_guarantee_bytes,
                    s.mem_limit_bytes,
                    s.gpu_count,
                ),
            )
        connection.exec_driver_sql(
            "INSERT INTO usage_daily_user VALUES (?, 'stale', 1, 99, 99, 99, 99)", (T0 // DAY_MS,)
        )
    engine.dispose()
    command.upgrade(alembic_config(url), "head")
    engine = make_engine(url)
    with session_maker(engine)() as db:
        roll_up(db, now_ms=NOW)
        no_groups = [{**e, "start": ServerStart(**{**e["start"].__dict__, "groups": []})} for e in events]
        for a, b in WINDOWS:
            assert_same(as_totals(allocation(db, a, b, "user", NOW)), expected(no_groups, a, b, "user"))
            assert_same(
                as_totals(allocation(db, a, b, "profile", NOW, username="user2")),
                expected(no_groups, a, b, "profile", username="user2"),
            )
    engine.dispose()


def test_one_persons_whole_days_are_read_from_the_rollups_not_the_sessions(db):
    """Would pass by accident if a person's report read the sessions: after the rollup the
    sessions' resources are wiped, and the whole-day figures must not change."""
    from sqlalchemy import update

    events = random_events(seed=21)
    record_all(db, events)
    roll_up(db, now_ms=NOW)
    a, b = T0 + DAY_MS, T0 + 8 * DAY_MS  # whole days, all closed sessions rolled up
    wanted = {agg: allocation(db, a, b, agg, NOW, username="user2") for agg in ("user", "profile", "group")}
    db.execute(
        update(ServerSession)
        .where(ServerSession.rolled_up.is_(True))
        .values(cpu_guarantee=None, cpu_limit=None, mem_guarantee_bytes=None, mem_limit_bytes=None, gpu_count=0)
    )
    db.commit()
    for aggregate, rows in wanted.items():
        assert allocation(db, a, b, aggregate, NOW, username="user2") == rows
    assert any(r["cpu_core_hours"] for r in wanted["profile"])  # there was something to lose


def test_an_sqlite_pool_hands_out_the_connection_used_last(tmp_path):
    """Each SQLite connection has its own page cache: the pool reuses the warm one (LIFO)
    rather than cycling through all of them, each caching the same pages."""
    engine = make_engine(f"sqlite:///{tmp_path / 'lifo.sqlite'}")
    try:
        first, second = engine.raw_connection(), engine.raw_connection()
        used_last = second.driver_connection
        first.close()
        second.close()  # back in the pool after `first`
        again = engine.raw_connection()
        assert again.driver_connection is used_last
        again.close()
    finally:
        engine.dispose()
