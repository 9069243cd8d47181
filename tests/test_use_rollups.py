"""Measured use is rolled up daily like the other figures, and the efficiency report reads
whole UTC days from those rollups and only the partial days at its edges (and the sessions
not rolled up yet) from the sessions: over any window, by user, group or profile, for
everyone or one person, with part of the history rolled up, it gives what a plain
reckoning over every session and its use gives, the cost of what was reserved but not
used at each instance type's rates included (SQLite and PostgreSQL)."""

import random

import pytest
from fuzzing import fuzz
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from twoi2c_hub.accounting.events import ServerStart, ServerStarted, ServerStopped
from twoi2c_hub.accounting.models import (
    DAY_MS,
    HOUR_MS,
    DailyUserGroupUse,
    DailyUserProfileUse,
    ServerSession,
    SessionUse,
)
from twoi2c_hub.accounting.recording import record
from twoi2c_hub.accounting.rollups import roll_up
from twoi2c_hub.accounting.use import efficiency
from twoi2c_hub.catalog.pricing import Rates

GiB = 1024**3
T0 = 1_800_000_000_000 // DAY_MS * DAY_MS + 5 * HOUR_MS + 17  # not on a midnight
NOW = T0 + 12 * DAY_MS
PEOPLE = [f"user{i}" for i in range(5)]
EARLIEST, LATEST = T0 - 2 * DAY_MS, NOW + 2 * DAY_MS
moment = st.one_of(
    st.integers(EARLIEST, LATEST),
    st.integers(EARLIEST // HOUR_MS, LATEST // HOUR_MS).map(lambda h: h * HOUR_MS),
    st.integers(EARLIEST // DAY_MS, LATEST // DAY_MS).map(lambda d: d * DAY_MS),
)
window = st.tuples(moment, moment).filter(lambda w: w[0] != w[1]).map(sorted)


def random_history(seed: int, count: int = 120) -> list[dict]:
    """Sessions of a few people over twelve days: most closed, some still running; most
    measured (over part of their time), some never, some measured for no time yet; some
    across several midnights, some starting on one; in no group, one or two."""
    rng = random.Random(seed)
    history, seen = [], set()
    for i in range(count):
        started = T0 + rng.randrange(0, 11 * DAY_MS)
        if i % 10 == 0:
            started = started // DAY_MS * DAY_MS  # on a midnight
        length = rng.choice([rng.randrange(1, HOUR_MS), rng.randrange(HOUR_MS, 3 * DAY_MS)])
        running = i % 9 == 0
        ends = min(started + length, NOW)
        measured = 0 if i % 13 == 0 else rng.randrange(1, ends - started + 1) if ends > started else 0
        username = rng.choice(PEOPLE)
        if (username, started) in seen:
            continue  # one session per start
        seen.add((username, started))
        history.append(
            {
                "username": username,
                "profile": rng.choice(["small", "large", None]),
                "groups": rng.sample(["a", "b", "c"], rng.randrange(0, 3)),
                "started": started,
                "stopped": None if running else ends,
                "last_sample": ends,
                "use": None
                if i % 7 == 0
                else (measured, rng.uniform(0, 3) * measured, rng.uniform(0.1, 9) * GiB * measured),
                "cpu_guarantee": rng.choice([None, 0.0, 0.5, 2.0]),
                "cpu_limit": rng.choice([None, 4.0]),
                "mem_guarantee_bytes": rng.choice([None, GiB, 3 * GiB]),
                "mem_limit_bytes": rng.choice([None, 8 * GiB]),
                "instance_type": rng.choice([None, None, "n2-highmem-4", "n2-standard-8", "unpriced"]),
            }
        )
    return history


def record_history(db, history: list[dict]) -> None:
    for s in history:
        start = ServerStart(username=s["username"], server_name="", started_ms=s["started"], profile=s["profile"],
                            groups=s["groups"], cpu_guarantee=s["cpu_guarantee"], cpu_limit=s["cpu_limit"],
                            mem_guarantee_bytes=s["mem_guarantee_bytes"],
                            mem_limit_bytes=s["mem_limit_bytes"], instance_type=s.get("instance_type"))  # fmt: skip
        events = [ServerStarted(start)]
        if s["stopped"] is not None:
            events.append(ServerStopped(s["username"], "", s["stopped"], "user", s["started"]))
        record(db, events)
    db.commit()
    ids = {
        (u, t): i for i, u, t in db.execute(select(ServerSession.id, ServerSession.username, ServerSession.started_ms))
    }
    for s in history:
        if s["use"] is not None:
            measured, cpu_core_ms, mem_byte_ms = s["use"]
            db.add(SessionUse(session_id=ids[s["username"], s["started"]], samples=2, first_sample_ms=s["started"],
                              last_sample_ms=s["last_sample"], measured_ms=measured, cpu_core_ms=cpu_core_ms,
                              cpu_seconds_at_last=0.0, cpu_peak_cores=1.0, mem_byte_ms=mem_byte_ms,
                              mem_peak_bytes=GiB))  # fmt: skip
    db.commit()


# a core-hour's and a GiB-hour's price on each instance type ("": none); one has no price
RATES = {"": Rates(0.04, 0.005, 0.0), "n2-highmem-4": Rates(0.06, 0.0075, 0.0), "n2-standard-8": Rates(0.05, 0.01, 0.0)}


def reckoned(history: list[dict], a: int, b: int, aggregate: str, person: str | None = None) -> dict[str, list]:
    """name -> [sessions, measured ms, CPU core-ms used, reserved, memory byte-ms used,
    reserved, {instance type: the same five figures}], worked out session by session: a
    measured session overlapping [a, b) for a positive time counts once, and adds the share
    of its figures that the overlap is of its time (to its stop, or its last sample while
    it runs)."""
    found: dict[str, list] = {}
    for s in history:
        if s["use"] is None or s["use"][0] <= 0 or (person is not None and s["username"] != person):
            continue
        ends = s["stopped"] if s["stopped"] is not None else s["last_sample"]
        overlap = min(ends, b) - max(s["started"], a)
        if overlap <= 0:
            continue
        share = overlap / max(ends - s["started"], 1)
        measured, cpu, mem = s["use"]
        cpu_reserved = s["cpu_guarantee"] if s["cpu_guarantee"] is not None else s["cpu_limit"] or 0.0
        mem_reserved = s["mem_guarantee_bytes"] if s["mem_guarantee_bytes"] is not None else s["mem_limit_bytes"] or 0
        figures = [1, measured * share, cpu * share, cpu_reserved * measured * share, mem * share,
                   mem_reserved * measured * share]  # fmt: skip
        names = {"user": [s["username"]], "profile": [s["profile"] or ""], "group": s["groups"] or [""]}[aggregate]
        for name in names:
            row = found.setdefault(name, [0] * 6 + [{}])
            by_type = row[6].setdefault(s.get("instance_type") or "", [0] * 5)
            for i, value in enumerate(figures):
                row[i] += value
                if i:
                    by_type[i - 1] += value
    return found


def money(by_type: dict[str, list]) -> tuple:
    """(costUnused, totalEfficiency) of a name's figures by instance type, each at its rates."""
    if any(t not in RATES for t in by_type):
        return None, None
    unused = used = asked = 0.0
    for t, (_, cpu, cpu_reserved, mem, mem_reserved) in by_type.items():
        rate = RATES[t]
        unused += (
            max(0, cpu_reserved - cpu) / HOUR_MS * rate.cpu + max(0, mem_reserved - mem) / HOUR_MS / GiB * rate.memory
        )
        used += cpu * rate.cpu + mem / GiB * rate.memory
        asked += cpu_reserved * rate.cpu + mem_reserved / GiB * rate.memory
    return unused, used / asked if asked else None


def assert_same(got: list[dict], wanted: dict[str, list]) -> None:
    assert [row["name"] for row in got] == sorted(wanted)
    for row in got:
        sessions, measured, cpu, cpu_reserved, mem, mem_reserved, by_type = wanted[row["name"]]
        if "costUnused" in row:  # asked with RATES: None where a session's instance type has no price
            unused, total_efficiency = money(by_type)
            assert (row["costUnused"] is None) == (unused is None)
            if unused is not None:
                assert row["costUnused"] == pytest.approx(unused, rel=1e-9, abs=1e-12)
                assert row["totalEfficiency"] == pytest.approx(total_efficiency, rel=1e-9, abs=1e-12)
        assert row["sessions"] == sessions, row["name"]
        assert row["measuredHours"] == pytest.approx(measured / HOUR_MS, rel=1e-9, abs=1e-12)
        assert row["cpuCoreUsageAverage"] == pytest.approx(cpu / measured, rel=1e-9, abs=1e-12)
        assert row["cpuCoreRequestAverage"] == pytest.approx(cpu_reserved / measured, rel=1e-9, abs=1e-12)
        assert row["ramByteUsageAverage"] == pytest.approx(mem / measured, rel=1e-9, abs=1e-3)
        assert row["ramByteRequestAverage"] == pytest.approx(mem_reserved / measured, rel=1e-9, abs=1e-3)
        assert row["cpuCoreHoursUnused"] == pytest.approx(max(0, cpu_reserved - cpu) / HOUR_MS, rel=1e-9, abs=1e-9)
        assert row["ramGiBHoursUnused"] == pytest.approx(max(0, mem_reserved - mem) / HOUR_MS / GiB, rel=1e-9, abs=1e-9)


@pytest.fixture(scope="module")
def history():
    return random_history(seed=41)


@pytest.fixture
def half_rolled_up(db, history):
    """The history, its closed sessions rolled up to the middle of it."""
    record_history(db, history)
    assert roll_up(db, T0 + 6 * DAY_MS) > 0
    return db


@fuzz(60)
@given(window=window, aggregate=st.sampled_from(["user", "group", "profile"]), person=st.sampled_from([None, *PEOPLE]))
def test_efficiency_over_any_window_is_the_session_by_session_reckoning(half_rolled_up, history, window, aggregate,
                                                                        person):  # fmt: skip
    a, b = window
    wanted = reckoned(history, a, b, aggregate, person)
    assert_same(efficiency(half_rolled_up, a, b, aggregate, username=person, rates=RATES.get), wanted)


def test_the_rollups_hold_every_closed_measured_session_once(db, history):
    """Rolled up, each person's closed measured sessions are in the rollups by profile and
    by group: counted once on the day they started, their figures whole over their days."""
    record_history(db, history)
    roll_up(db, NOW)
    closed = [s for s in history if s["stopped"] is not None and s["use"] and s["use"][0] > 0]
    for person in PEOPLE:
        theirs = [s for s in closed if s["username"] == person]
        for table in (DailyUserProfileUse, DailyUserGroupUse):
            sessions, measured, cpu = db.execute(
                select(func.sum(table.sessions), func.sum(table.measured_ms), func.sum(table.cpu_core_ms)).where(
                    table.username == person
                )
            ).one()
            groups = (lambda s: max(1, len(s["groups"]))) if table is DailyUserGroupUse else (lambda s: 1)
            assert sessions == sum(groups(s) for s in theirs)
            assert measured == pytest.approx(sum(groups(s) * s["use"][0] for s in theirs), rel=1e-12)
            assert cpu == pytest.approx(sum(groups(s) * s["use"][1] for s in theirs), rel=1e-12)
    # and whole days of a window are read from them: the same figures before and after
    window = (T0 + DAY_MS // 3, NOW - DAY_MS // 3)
    for aggregate in ("user", "group", "profile"):
        assert_same(efficiency(db, *window, aggregate), reckoned(history, *window, aggregate))


def test_a_report_reads_the_rolled_up_days_from_the_rollups(db):
    """A rolled-up session's whole days come from the rollups, not from its session: once
    its session is gone from the sessions (as a report must never need it), a window of
    whole days still has it."""
    history = [
        {"username": "ann", "profile": "small", "groups": ["a"], "started": T0, "stopped": T0 + 3 * DAY_MS,
         "last_sample": T0 + 3 * DAY_MS, "use": (3 * DAY_MS, 1.5 * 3 * DAY_MS, 2 * GiB * 3 * DAY_MS),
         "cpu_guarantee": 2.0, "cpu_limit": None, "mem_guarantee_bytes": 4 * GiB, "mem_limit_bytes": None}
    ]  # fmt: skip
    record_history(db, history)
    roll_up(db, NOW)
    first_day = T0 // DAY_MS + 1
    window = (first_day * DAY_MS, (first_day + 2) * DAY_MS)  # two whole days inside her three
    (ann,) = efficiency(db, *window, "user")
    assert ann["measuredHours"] == pytest.approx(48) and ann["cpuEfficiency"] == pytest.approx(0.75)
    assert ann["sessions"] == 1  # started before the window: counted once, from the sessions
    db.query(SessionUse).delete()
    db.commit()
    (ann,) = efficiency(db, *window, "user")
    assert ann["measuredHours"] == pytest.approx(48) and ann["ramEfficiency"] == pytest.approx(0.5)
    assert ann["sessions"] == 0  # only the rollups knew her session


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_upgraded_database_rolls_up_its_measured_use_again(database_url, history):
    """A database from before the rollups of measured use (0009), its sessions rolled up
    there: upgraded, every session is rolled up again (the usage rollups with the new ones)
    and the report is the same before the usage service has done so and after."""
    from alembic import command
    from sqlalchemy import MetaData, update

    from twoi2c_hub.accounting.db import alembic_config, make_engine, session_maker, upgrade

    engine = make_engine(database_url)
    with engine.begin() as connection:
        metadata = MetaData()
        metadata.reflect(connection)
        metadata.drop_all(connection)
    command.upgrade(alembic_config(database_url), "0009")
    with session_maker(engine)() as db:
        record_history(db, history)
        db.execute(update(ServerSession).where(ServerSession.stopped_ms.is_not(None)).values(rolled_up=True))
        db.commit()
    upgrade(database_url)
    window = (T0 + DAY_MS // 3, NOW - DAY_MS // 3)
    with session_maker(engine)() as db:
        assert not db.scalar(select(func.count()).select_from(DailyUserProfileUse))
        assert_same(efficiency(db, *window, "group"), reckoned(history, *window, "group"))
        assert roll_up(db, NOW) == sum(s["stopped"] is not None for s in history)
        assert db.scalar(select(func.count()).select_from(DailyUserProfileUse))
        assert_same(efficiency(db, *window, "group"), reckoned(history, *window, "group"))
    engine.dispose()


def test_a_rollup_committed_in_the_middle_of_the_report_is_read_once(database_url, history):
    """The report reads the rollups and the sessions not rolled up yet in separate queries;
    the usage service's rollup can commit between them: read in one snapshot, every session
    counts once (SQLite and PostgreSQL)."""
    from sqlalchemy import event

    from twoi2c_hub.accounting.db import make_engine, session_maker

    reader_engine, writer_engine = make_engine(database_url), make_engine(database_url)
    with session_maker(writer_engine)() as writer:
        record_history(writer, history)
        roll_up(writer, T0 + 3 * DAY_MS)  # some rollups for the report to read first
    plan = {"armed": True, "read_rollups": False, "rolled": 0}

    @event.listens_for(reader_engine, "before_cursor_execute")
    def between(_conn, _cursor, statement, *_):
        statement = " ".join(statement.split())
        if " FROM use_daily_" in statement:
            plan["read_rollups"] = True
        elif plan["armed"] and plan["read_rollups"] and " FROM sessions" in statement:
            plan["armed"] = False
            with session_maker(writer_engine)() as writer:
                plan["rolled"] = roll_up(writer, NOW)

    window = (T0 + 5 * HOUR_MS, NOW - 5 * HOUR_MS)  # whole days in the middle, partial days at the edges
    with session_maker(reader_engine)() as reader:
        assert_same(efficiency(reader, *window, "profile"), reckoned(history, *window, "profile"))
    assert plan["rolled"] > 0  # the rollup did land in the middle of the report
    reader_engine.dispose()
    writer_engine.dispose()
