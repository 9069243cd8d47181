"""The spawners' events on the wire: one pydantic discriminated union, checked a request body
at a time, each problem a 400 naming its field; and the intake that records them in shared
transactions."""

import asyncio
import json

import pytest
from prometheus_client import CollectorRegistry

from twoi2c_hub.accounting.db import make_engine, session_maker, upgrade
from twoi2c_hub.accounting.events import EventError, GroupsChanged, ServerStart, ServerStarted, ServerStopped
from twoi2c_hub.accounting.models import ServerSession
from twoi2c_hub.accounting.posted import parse_event, parse_events, parse_server_summary
from twoi2c_hub.catalog import ServerSummary, initialize, resolve
from twoi2c_hub.paths import demo_config
from twoi2c_hub.services.cost.budgethandlers import server_of
from twoi2c_hub.services.framework import BadParameter
from twoi2c_hub.services.usage.intake import EventIntake
from twoi2c_hub.services.usage.metrics import UsageMetrics

NOW_MS = 1_795_000_000_000
GiB = 1024**3
START = {"type": "start", "username": "alice", "started": "2026-11-26T10:00:00Z", "server": {"profile": "cpu"}}
STOP = {"type": "stop", "username": "alice", "started": "2026-11-26T10:00:00Z", "stopped": "2026-11-26T11:00:00Z"}
SUMMARY = {  # ResolvedServer.summary(), as the spawners post it
    "profile": "gpu",
    "choices": {"image": "pytorch"},
    "image": "quay.io/jupyter/pytorch-notebook",
    "cpu_guarantee": 3.5,
    "cpu_limit": 4,
    "mem_guarantee": 14 * GiB,
    "mem_limit": 16 * GiB,
    "gpu_count": 1,
    "gpu_type": "nvidia-t4",
    "instance_type": "g4dn.xlarge",
}


def test_a_start_carries_the_servers_resources_with_their_units():
    (event,) = parse_events({**START, "server": SUMMARY, "groups": ["physics", "students", "physics"]}, now_ms=NOW_MS)
    assert isinstance(event, ServerStarted)
    start = event.start
    assert (start.username, start.server_name, start.started_ms) == ("alice", "", 1_795_687_200_000)
    assert (start.cpu_guarantee, start.cpu_limit, start.mem_guarantee_bytes, start.mem_limit_bytes) == (
        3.5,
        4.0,
        14 * GiB,
        16 * GiB,
    )
    assert (start.gpu_count, start.gpu_type, start.instance_type) == (1, "nvidia-t4", "g4dn.xlarge")
    assert start.choices == {"image": "pytorch"} and start.groups == ["physics", "students"]
    summary = parse_server_summary(SUMMARY)
    assert (summary.cpu_guarantee_cores, summary.mem_limit_bytes) == (3.5, 16 * GiB)


def test_a_summary_is_read_by_its_wire_names_and_by_its_names_with_units():
    assert ServerSummary(cpu_guarantee_cores=2, mem_guarantee_bytes=GiB) == parse_server_summary(
        {"cpu_guarantee": 2, "mem_guarantee": GiB}
    )


def test_the_summary_a_spawner_builds_is_the_summary_the_services_read():
    """selection -> annotation, event and budget check -> usage and cost services: one model."""
    catalog_ = initialize(demo_config()["profiles"])
    everyone = {
        g for p in catalog_ for item in [p, *(p.get("profile_options") or {}).values()] for g in groups_in(item)
    }
    checked = 0
    for profile in catalog_:
        for selection in selections_of(profile):
            built = resolve(catalog_, everyone, selection).summary()
            wire = json.loads(json.dumps(built.wire()))  # as it travels
            assert parse_server_summary(wire) == built
            (event,) = parse_events({**START, "server": wire}, now_ms=NOW_MS)
            assert (event.start.cpu_guarantee, event.start.mem_limit_bytes, event.start.gpu_count) == (
                built.cpu_guarantee_cores,
                built.mem_limit_bytes,
                built.gpu_count,
            )
            assert server_of(wire) == built.resources()
            checked += 1
    assert checked >= len(catalog_)


def groups_in(item: dict) -> list[str]:
    """The groups a profile or option (and its choices) is offered to."""
    choices = (item.get("choices") or {}).values()
    return [g for thing in [item, *choices] for g in thing.get("allowed_groups") or []]


def selections_of(profile: dict) -> list[dict]:
    """The profile alone, then each choice of each of its options."""
    options = profile.get("profile_options") or {}
    selections = [{"profile": profile["slug"]}]
    for key, option in options.items():
        for choice in option.get("choices") or {}:
            selections.append({"profile": profile["slug"], key: choice})
    return selections


def test_each_kind_of_event_is_parsed_by_its_type():
    events = parse_events(
        [
            START,
            STOP,
            {"type": "stop", "username": "alice", "stopped": 1_795_690_800_000, "reason": "culler"},
            {"type": "groups", "username": "bob", "at": "2026-11-26T09:00:00Z", "groups": ["a", "b"]},
            {"type": "groups", "username": "bob", "added": ["c"], "removed": ["a"]},
            {"type": "groups", "username": "carol", "groups": None},
        ],
        now_ms=NOW_MS,
    )
    assert [type(e) for e in events] == [ServerStarted, ServerStopped, ServerStopped] + [GroupsChanged] * 3
    assert events[1] == ServerStopped("alice", "", 1_795_690_800_000, "user", 1_795_687_200_000)
    assert events[2] == ServerStopped("alice", "", 1_795_690_800_000, "culler", None)  # the open session
    assert events[3] == GroupsChanged("bob", 1_795_683_600_000, frozenset({"a", "b"}))
    # only what changed, dated when it came in
    assert events[4] == GroupsChanged("bob", NOW_MS, None, frozenset({"c"}), frozenset({"a"}))
    assert events[5] == GroupsChanged("carol", NOW_MS, frozenset())  # null groups: in none


@pytest.mark.parametrize(
    "event, field, problem",
    [
        ({**START, "server": "big"}, "events[0].server", "must be an object"),
        ({**START, "server": {"cpu_limit": "lots"}}, "events[0].server.cpu_limit", "must be a number"),
        ({**START, "server": {"cpu_limit": float("nan")}}, "events[0].server.cpu_limit", "between 0 and 10^15"),
        ({**START, "server": {"mem_limit": 10**400}}, "events[0].server.mem_limit", "between 0 and 10^15"),
        ({**START, "server": {"mem_limit": 1.5}}, "events[0].server.mem_limit", "must be a whole number"),
        ({**START, "server": {"choices": {"image": 5}}}, "events[0].server.choices.image", "at most 2000"),
        ({**START, "server": {"choices": [1]}}, "events[0].server.choices", "at most 100 options"),
        ({**START, "started": True}, "events[0].started", "not true or false"),
        ({**START, "started": 10**400}, "events[0].started", "between the years 2000 and 2200"),
        ({**START, "started": "0001-01-01T00:00:00Z"}, "events[0].started", "between the years 2000 and 2200"),
        ({**START, "groups": "abc"}, "events[0].groups", "must be a list of names"),
        ({**START, "groups": ["a"] * 1001}, "events[0].groups", "at most 1000 names"),
        ({**START, "username": ""}, "events[0].username", "must be a non-empty string"),
        ({**START, "username": "x" * 300}, "events[0].username", "at most 255 characters"),
        ({**START, "server_name": 7}, "events[0].server_name", "must be a string"),
        ({**STOP, "reason": "because"}, "events[0].reason", "must be one of user, admin"),
        ({**STOP, "stopped": "yesterday"}, "events[0].stopped", "'yesterday' is not an ISO 8601 time"),
        ({"type": "stop", "username": "alice"}, "events[0].stopped", "an ISO 8601 time or epoch milliseconds"),
        ({"type": "start"}, "events[0].username", "must be a non-empty string"),
        ({"type": "groups", "username": "alice", "groups": ["a", 2]}, "events[0].groups[1]", "non-empty string"),
        ({"type": "explode", "username": "alice"}, "events[0].type", "must be start, stop or groups"),
        ({"username": "alice"}, "events[0].type", "must be start, stop or groups"),
        ("start", "events[0]", "must be an object"),
    ],
)
def test_each_malformed_event_names_its_field_and_its_problem(event, field, problem):
    with pytest.raises(EventError) as refused:
        parse_events(event, now_ms=NOW_MS)
    assert refused.value.field == field and problem in refused.value.problem
    with pytest.raises(EventError) as refused:  # second in a list, its index in the path
        parse_events([START, event], now_ms=NOW_MS)
    assert refused.value.field == field.replace("events[0]", "events[1]")
    with pytest.raises(EventError) as refused:  # one event on its own, where it was found
        parse_event(event, "event", now_ms=NOW_MS)
    assert refused.value.field == field.replace("events[0]", "event")


@pytest.mark.parametrize(
    "server, message",
    [
        ({"cpu_guarantee": 1, "mem_guarantee": float("nan")}, "server: nan is not a resource amount"),
        ({"cpu_guarantee": 10**400}, "is not a resource amount (server.cpu_guarantee)"),
        ({"gpu_count": -1}, "server: -1 is not a resource amount (server.gpu_count)"),
        ("big", "server: must be an object"),
        ({"gpu_type": 5}, "server: server.gpu_type must be a string of at most 255 characters"),
    ],
)
def test_the_budget_check_reads_its_server_as_a_start_event_does(server, message):
    with pytest.raises(BadParameter) as refused:
        server_of(server)
    assert refused.value.parameter == "server" and message in refused.value.message
    resources = server_of(SUMMARY)
    assert (resources.cpu_guarantee, resources.mem_guarantee, resources.gpu_count) == (3.5, 14 * GiB, 1)


@pytest.fixture
def intake(tmp_path):
    url = f"sqlite:///{tmp_path / 'intake.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    yield EventIntake(session_maker(engine), UsageMetrics(CollectorRegistry()))
    engine.dispose()


def _count_transactions(intake) -> list[int]:
    transactions = []
    record = intake.record
    intake.record = lambda events: transactions.append(len(events)) or record(events)
    return transactions


def test_posts_read_in_the_same_pass_of_the_loop_share_one_transaction(intake):
    transactions = _count_transactions(intake)
    first = parse_events([START, STOP], now_ms=NOW_MS)
    second = parse_events({**START, "username": "bob"}, now_ms=NOW_MS)

    async def post_both():
        return await asyncio.gather(intake.submit(first), intake.submit(second))

    assert asyncio.run(post_both()) == [2, 1]
    assert transactions == [3]
    with intake.open_db() as db:
        assert sorted(s.username for s in db.query(ServerSession)) == ["alice", "bob"]


async def _after_passes(passes, post):
    for _ in range(passes):
        await asyncio.sleep(0)  # one pass of the event loop
    return await post()


def test_a_post_read_while_the_loop_is_busy_joins_the_transaction_and_a_quiet_loop_commits(intake):
    transactions = _count_transactions(intake)
    quiet = EventIntake.QUIET_PASSES
    people = [parse_events({**START, "username": name}, now_ms=NOW_MS) for name in ("ann", "bea", "cy")]

    async def post_staggered():
        return await asyncio.gather(
            intake.submit(people[0]),
            _after_passes(quiet // 2, lambda: intake.submit(people[1])),  # the loop is not yet quiet
            _after_passes(4 * quiet, lambda: intake.submit(people[2])),  # long after the commit
        )

    assert asyncio.run(post_staggered()) == [1, 1, 1]
    assert transactions == [2, 1]


def test_a_steady_stream_of_posts_cannot_hold_the_commit_back(intake):
    transactions = _count_transactions(intake)
    posts = 3 * EventIntake.MAX_PASSES
    each = [parse_events({**START, "username": f"p{i}"}, now_ms=NOW_MS) for i in range(posts)]

    async def one_post_a_pass():
        return await asyncio.gather(*(_after_passes(i, lambda i=i: intake.submit(each[i])) for i in range(posts)))

    assert asyncio.run(one_post_a_pass()) == [1] * posts
    assert sum(transactions) == posts and len(transactions) >= 3
    assert max(transactions) <= EventIntake.MAX_PASSES + 2
    with intake.open_db() as db:
        assert db.query(ServerSession).count() == posts


def test_a_post_that_cannot_be_recorded_fails_alone(intake):
    good = parse_events({**START, "username": "bob"}, now_ms=NOW_MS)
    # no one's session (a NULL name): the database refuses it
    bad = [ServerStopped("carol", "", NOW_MS, "user", None), ServerStarted(ServerStart(None, "", NOW_MS))]

    async def post_both():
        return await asyncio.gather(intake.submit(good), intake.submit(bad), return_exceptions=True)

    recorded, failed = asyncio.run(post_both())
    assert recorded == 1 and isinstance(failed, Exception)
    with intake.open_db() as db:
        assert [s.username for s in db.query(ServerSession)] == ["bob"]
