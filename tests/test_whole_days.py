"""Every window is read in two parts -- whole UTC days from the rollups, the rest from the
sessions -- and the parts add up to what the sessions alone say: for usage, cost and one
person's spending, over any window, with part of the history rolled up."""

import pytest
from cost_figures import NOW, PRICING, T0, GiB, random_sessions, record_all
from cost_figures import assert_same as same_cost
from cost_figures import expected as expected_cost
from fuzzing import fuzz
from hypothesis import given
from hypothesis import strategies as st
from usage_figures import assert_same as same_usage
from usage_figures import expected as expected_usage

from twoi2c_hub.accounting.cost_reports import cost
from twoi2c_hub.accounting.costs import CostBasis, SessionCoster, roll_up_costs
from twoi2c_hub.accounting.events import ServerStart, ServerStarted, ServerStopped
from twoi2c_hub.accounting.figures import FIGURES, HOURS, NO_USAGE
from twoi2c_hub.accounting.models import DAY_MS, HOUR_MS
from twoi2c_hub.accounting.opencost import AGGREGATES
from twoi2c_hub.accounting.recording import record
from twoi2c_hub.accounting.reports import usage
from twoi2c_hub.accounting.rollups import roll_up
from twoi2c_hub.accounting.spending import UNITS, PersonHistory
from twoi2c_hub.accounting.whole_days import split
from twoi2c_hub.catalog import INSTANCE_TYPES

BASIS = CostBasis(PRICING, INSTANCE_TYPES)
PEOPLE = [f"user{i}" for i in range(9)]
# moments from two days before the history to two days after now: any millisecond, or
# one on an hour or a midnight (windows of whole days only, or of none)
EARLIEST, LATEST = T0 - 2 * DAY_MS, NOW + 2 * DAY_MS
moment = st.one_of(
    st.integers(EARLIEST, LATEST),
    st.integers(EARLIEST // HOUR_MS, LATEST // HOUR_MS).map(lambda h: h * HOUR_MS),
    st.integers(EARLIEST // DAY_MS, LATEST // DAY_MS).map(lambda d: d * DAY_MS),
)
window = st.tuples(moment, moment).filter(lambda w: w[0] != w[1]).map(sorted)


@fuzz(200)
@given(start=moment, end=moment)
def test_a_window_splits_into_whole_days_and_its_edges_once_each(start, end):
    if end <= start:
        return
    days, pieces = split(start, end)
    edges = [(p.start_ms, p.end_ms) for p in pieces if not p.unrolled_only]
    middle = [(p.start_ms, p.end_ms) for p in pieces if p.unrolled_only]
    assert middle == ([(days.start * DAY_MS, days.stop * DAY_MS)] if days else [])
    covered = sorted(edges + middle)
    assert covered[0][0] == start and covered[-1][1] == end and all(a < b for a, b in covered)
    assert all(b == c for (_, b), (c, _) in zip(covered, covered[1:], strict=False))  # no gap, no overlap
    if days:
        assert all(b - a < DAY_MS for a, b in edges)  # a partial day at either end, no more
    else:
        assert edges == [(start, end)]


@pytest.fixture(scope="module")
def history():
    return random_sessions(seed=23)


@pytest.fixture
def half_rolled_up(db, history):
    """The history, its usage rolled up to one day and its cost to another."""
    record_all(db, history)
    roll_up(db, T0 + 6 * DAY_MS)
    roll_up_costs(db, BASIS, now_ms=T0 + 8 * DAY_MS)
    return db


@fuzz(40)
@given(window=window, aggregate=st.sampled_from(AGGREGATES), person=st.sampled_from([None, *PEOPLE]))
def test_usage_and_cost_over_any_window_are_the_sessions_figures(half_rolled_up, history, window, aggregate, person):
    a, b = window
    events = [{"start": s, "stop": stop} for s, stop in history]
    wanted = expected_usage(events, a, b, aggregate, person, now=NOW)
    same_usage(usage(half_rolled_up, a, b, aggregate, NOW, username=person), wanted)
    if person is None:
        same_cost(cost(half_rolled_up, BASIS, a, b, aggregate, NOW), expected_cost(history, a, b, aggregate))


@fuzz(40)
@given(start=st.integers(T0 - DAY_MS, NOW - 1), since=st.integers(EARLIEST, T0), person=st.sampled_from(PEOPLE))
def test_one_persons_spending_from_any_start_is_the_sessions_figures(half_rolled_up, history, start, since, person):
    """Read once from `since`, worked out for any later start (the budget check's way)."""
    since = min(since, start)
    spent = PersonHistory(half_rolled_up, SessionCoster(BASIS), person, since, NOW, frozenset(UNITS)).spent(start)
    money = expected_cost(history, start, NOW, "user").get(person, [0.0])
    hours = expected_usage([{"start": s, "stop": stop} for s, stop in history], start, NOW, "user", now=NOW)
    assert spent["money"] == pytest.approx(sum(money), abs=1e-6)
    assert [spent[u] for u in HOURS] == pytest.approx(list(hours.get(person, NO_USAGE)[1:]), abs=1e-6)


def test_a_server_guaranteed_no_cpu_counts_none_before_and_after_its_rollup(db):
    """A guarantee of 0 is a guarantee: its limit does not stand in for it (as a price
    charges it), whether the session is read raw, from the rollups or by the budget check."""
    server = ServerStart(username="ann", server_name="", started_ms=T0 + HOUR_MS, cpu_guarantee=0.0, cpu_limit=4.0,
                         mem_guarantee_bytes=0, mem_limit_bytes=8 * GiB)  # fmt: skip
    record(db, [ServerStarted(server)])
    record(db, [ServerStopped("ann", "", T0 + DAY_MS + 3 * HOUR_MS, "user", server.started_ms)])
    db.commit()
    wanted = dict(zip(FIGURES, (1, 26.0, 0.0, 0.0, 0.0), strict=True))
    for rolled_up in (False, True):
        if rolled_up:
            roll_up(db, NOW)
        figures = usage(db, T0, T0 + 2 * DAY_MS, "user", NOW)["ann"]
        assert figures._asdict() == pytest.approx(wanted)
        spent = PersonHistory(db, None, "ann", T0, T0 + 2 * DAY_MS, frozenset(HOURS)).spent(T0)
        assert {u: spent[u] for u in HOURS} == pytest.approx({u: wanted[u] for u in HOURS})


@pytest.fixture
def rollup_between_reads(database_url, history):
    """A reader's session on the history (nothing rolled up yet), and `arm(roll)`: from then
    on, once the reader has read a rollup table, `roll(db)` commits on another connection
    just before the reader's next query of the sessions -- the moment a service's rollup
    loop can land in the middle of a report."""
    from sqlalchemy import event

    from twoi2c_hub.accounting.db import make_engine, session_maker

    reader_engine, writer_engine = make_engine(database_url), make_engine(database_url)
    with session_maker(writer_engine)() as writer:
        record_all(writer, history)
    plan = {"roll": None, "read_rollups": False}

    @event.listens_for(reader_engine, "before_cursor_execute")
    def between(_conn, _cursor, statement, *_):
        if plan["roll"] is None:
            return
        statement = " ".join(statement.split())
        if " FROM usage_" in statement or " FROM cost_" in statement:
            plan["read_rollups"] = True
        elif plan["read_rollups"] and " FROM sessions" in statement:
            roll, plan["roll"], plan["read_rollups"] = plan["roll"], None, False
            with session_maker(writer_engine)() as writer:
                plan["rolled"] += roll(writer)
                writer.commit()

    def arm(roll):
        plan.update(roll=roll, read_rollups=False, rolled=0)

    with session_maker(reader_engine)() as reader:
        yield reader, arm, lambda: plan["rolled"]
    reader_engine.dispose()
    writer_engine.dispose()


def test_a_rollup_committed_in_the_middle_of_a_report_is_read_once(rollup_between_reads, history):
    """A report reads the rollups and the sessions not yet rolled up in separate queries;
    the services' rollup loops commit whenever they like. Read in one snapshot, a report
    that a rollup lands in the middle of counts every session once (SQLite and PostgreSQL),
    for usage, cost and one person's spending."""
    reader, arm, rolled = rollup_between_reads
    events = [{"start": s, "stop": stop} for s, stop in history]
    a, b = T0 + 3 * HOUR_MS, NOW  # whole days in the middle, partial days at the edges
    # half the history in the rollups first, so that the reader has rollups to read
    arm(lambda db: roll_up(db, T0 + 5 * DAY_MS))
    same_usage(usage(reader, a, b, "user", NOW), expected_usage(events, a, b, "user", now=NOW))
    assert rolled() > 0  # the rollup did land in the middle of the report
    reader.commit()
    arm(lambda db: roll_up(db, NOW))
    same_usage(usage(reader, a, b, "group", NOW), expected_usage(events, a, b, "group", now=NOW))
    assert rolled() > 0
    reader.commit()
    arm(lambda db: roll_up_costs(db, BASIS, now_ms=T0 + 6 * DAY_MS))
    same_cost(cost(reader, BASIS, a, b, "profile", NOW), expected_cost(history, a, b, "profile"))
    assert rolled() > 0
    reader.commit()
    arm(lambda db: roll_up_costs(db, BASIS, now_ms=NOW))
    person = history[0][0].username
    spent = PersonHistory(reader, SessionCoster(BASIS), person, T0, NOW, frozenset(UNITS)).spent(a)
    assert spent["money"] == pytest.approx(sum(expected_cost(history, a, NOW, "user").get(person, [0.0])), abs=1e-6)
    assert rolled() > 0
