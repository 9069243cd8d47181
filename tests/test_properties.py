"""Property-based tests: whatever is thrown at the window grammar, the event intake and
the profile selection, the answer is a value or a clear refusal, never a crash, and a
refused input records nothing."""

from datetime import UTC, datetime

import pytest
from fuzzing import json_value, scalar
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from twoi2c_hub import catalog
from twoi2c_hub.accounting.db import make_engine, session_maker, upgrade
from twoi2c_hub.accounting.events import EventError
from twoi2c_hub.accounting.models import GroupMembership, ServerSession
from twoi2c_hub.accounting.posted import parse_event
from twoi2c_hub.accounting.recording import record
from twoi2c_hub.accounting.windows import MAX_WINDOW_DAYS, parse_window
from twoi2c_hub.config.loading import load_config
from twoi2c_hub.paths import examples_dir

NOW = datetime(2026, 11, 26, 14, 37, 48, tzinfo=UTC)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

window_text = st.one_of(
    st.text(max_size=60),
    st.from_regex(r"\A\d{1,9}[mhdwxy]\Z"),
    st.from_regex(r"\A\d{1,9}[mhdw] offset \d{1,9}[mhdw]\Z"),
    st.from_regex(r"\A\d{1,13}[,-]\d{1,13}\Z"),
    st.builds(lambda a, b: f"{a},{b}", st.text(max_size=30), st.text(max_size=30)),
    st.builds(
        lambda a, b: f"{a.isoformat()}Z,{b.isoformat()}Z",
        st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
        st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    ),
)


@FAST
@given(
    window_text, st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))
)
def test_a_window_is_a_bounded_interval_or_a_value_error(value, now):
    try:
        window = parse_window(value, now)
    except ValueError as e:
        assert str(e)
        return
    assert window.start_ms < window.end_ms
    assert window.end_ms - window.start_ms <= MAX_WINDOW_DAYS * 86_400_000


event_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["start", "stop", "groups", "other"])},
    optional={
        "username": st.one_of(st.text(max_size=300), scalar),
        "server_name": json_value,
        "started": st.one_of(json_value, st.datetimes().map(lambda d: d.isoformat())),
        "stopped": st.one_of(json_value, st.datetimes().map(lambda d: d.isoformat())),
        "reason": st.one_of(st.sampled_from(["user", "admin", "culler", "crash", "hub", "reconciled"]), json_value),
        "server": st.one_of(
            json_value,
            st.fixed_dictionaries(
                {},
                optional={
                    "cpu_limit": scalar,
                    "cpu_guarantee": scalar,
                    "mem_limit": scalar,
                    "gpu_count": scalar,
                    "profile": scalar,
                    "choices": json_value,
                    "image": scalar,
                },
            ),
        ),
        "groups": json_value,
        "added": json_value,
        "removed": json_value,
        "at": json_value,
    },
)


@pytest.mark.slow
def test_the_event_intake_records_a_valid_event_and_nothing_of_a_refused_one(tmp_path):
    url = f"sqlite:///{tmp_path / 'events.sqlite'}"
    upgrade(url)
    sessions = session_maker(make_engine(url))

    @FAST
    @given(st.one_of(event_like, json_value))
    def check(raw):
        try:
            event = parse_event(raw, "events[0]", now_ms=1_700_000_000_000)
        except EventError as e:
            assert e.field.startswith("events[0]") and e.problem
            with sessions() as db:
                before = (
                    db.scalar(select(func.count()).select_from(ServerSession)),
                    db.scalar(select(func.count()).select_from(GroupMembership)),
                )
            # nothing was recorded, so nothing changed
            with sessions() as db:
                assert before == (
                    db.scalar(select(func.count()).select_from(ServerSession)),
                    db.scalar(select(func.count()).select_from(GroupMembership)),
                )
            return
        with sessions() as db:
            record(db, [event])  # a parsed event always records
            db.rollback()

    check()


CATALOG = load_config(examples_dir() / "demo-community.yaml").profile_list()
keys = st.sampled_from(
    ["profile", "image", "resources", "gpu", "image--unlisted-choice", "resources--unlisted-choice", "x"]
)
selection = st.one_of(
    st.none(),
    json_value,
    st.dictionaries(
        keys,
        st.one_of(
            scalar,
            st.sampled_from(
                [
                    "cpu",
                    "gpu",
                    "scipy",
                    "mem_14_gib",
                    "whole-node",
                    "unlisted-choice",
                    "quay.io/x/y:1",
                    " " * 3,
                    "a" * 300,
                ]
            ),
        ),
        max_size=4,
    ),
)
groups = st.lists(st.sampled_from(["researchers", "students", "RESEARCHERS", "staff", ""]), max_size=3)


@FAST
@given(selection, groups)
def test_a_selection_resolves_or_is_refused_with_a_4xx(chosen, member_of):
    try:
        resolved = catalog.resolve(
            CATALOG, member_of, chosen if isinstance(chosen, dict) or chosen is None else {"profile": chosen}
        )
    except catalog.ProfileError as e:
        assert e.status in (400, 403) and e.message
        return
    offered = {p["slug"] for p in catalog.available(CATALOG, member_of)}
    assert resolved.profile_slug in offered
