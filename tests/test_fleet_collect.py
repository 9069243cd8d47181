"""Collecting the fleet's figures (`twoi2c-hub fleet collect`): from a real hub (its people
as the keyed digests of its raw sessions, its months as its own statements), then only
what changed; and from hubs that are down, slow, refuse the token or answer something
malformed, each kept apart: the others are collected, its last figures are kept, and the
operator reads why."""

import asyncio
import hashlib
import hmac
import json
import math
import secrets
import socket
import threading
import time
from datetime import UTC, date, datetime, timedelta

import pytest
import requests
import yaml
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from twoi2c_hub.accounting import fleet_store
from twoi2c_hub.accounting.db import make_engine, session_maker, upgrade
from twoi2c_hub.accounting.events import ServerStart, ServerStarted, ServerStopped
from twoi2c_hub.accounting.fleet import ActiveUsers
from twoi2c_hub.accounting.fleet_store import CollectedHub, FleetBase, HubMonthFigures, PersonDay
from twoi2c_hub.accounting.models import DAY_MS, HOUR_MS
from twoi2c_hub.accounting.recording import record
from twoi2c_hub.cli import main as cli
from twoi2c_hub.config.fleet import load_fleet
from twoi2c_hub.paths import demo_config
from twoi2c_hub.services.fleet.collect import collect, months_between

SECRET_ENV = "TWOI2C_TEST_FLEET_SECRET"
TOKEN_ENV = "TWOI2C_TEST_FLEET_TOKEN"
NOW_MS = int(datetime(2026, 11, 20, 12, tzinfo=UTC).timestamp() * 1000)
TODAY = NOW_MS // DAY_MS


def digest(secret: bytes, username: str) -> str:
    return hmac.new(secret, username.encode(), hashlib.sha256).hexdigest()[:32]


def fleet_config(tmp_path, hubs: dict[str, str], **fleet):
    """A fleet of the hubs {name: url}, the i-th with its token in TOKEN_ENV_i."""
    text = yaml.safe_dump(
        {
            "fleet": {
                "name": "Test operator",
                "secret_env": SECRET_ENV,
                "database_url": f"sqlite:///{tmp_path / 'fleet.sqlite'}",
                **fleet,
            },
            "clusters": [{"name": "east", "monthly_cost": 100}],
            "communities": [{"name": "ocean", "fee": 10}],
            "hubs": [
                {"name": name, "community": "ocean", "cluster": "east", "url": url, "token_env": f"{TOKEN_ENV}_{i}"}
                for i, (name, url) in enumerate(hubs.items())
            ],
        }
    )
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    return load_fleet(path)


def stored(fleet) -> tuple[dict, dict, dict]:
    """The fleet database: hub -> state, hub -> {day: digests}, (hub, month) -> figures."""
    engine = make_engine(fleet.fleet.database_url)
    with session_maker(engine)() as db:
        states = {s.name: (s.collected_ms, s.error, s.final_day) for s in db.scalars(select(CollectedHub))}
        people: dict = {}
        for row in db.scalars(select(PersonDay)):
            people.setdefault(row.hub, {}).setdefault(row.day, set()).add(row.digest)
        months = {(m.hub, m.month): (m.attributed_cost, m.fee, m.bill) for m in db.scalars(select(HubMonthFigures))}
    engine.dispose()
    return states, people, months


# --- a hub of our own making, that can misbehave ---------------------------------------------


class FakeHub:
    """The two pages the collector reads, served on loopback in a thread of their own:
    `days` {day number: digests} and `attributed` per month, or `misbehave(kind)`."""

    def __init__(self):
        self.days: dict[int, list[str]] = {}
        self.attributed = 12.5
        self.kind = "good"
        self.asked: list[str] = []
        self.loop = asyncio.new_event_loop()
        (sock,) = bind_sockets(0, "127.0.0.1")
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        ready = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.server = HTTPServer(web.Application([(r"/services/(usage|cost)/api/v1/(.*)", Page, {"hub": self})]))
            self.server.add_sockets([sock])
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait()

    def close(self):
        self.loop.call_soon_threadsafe(self.server.stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def digests(self, window: str) -> dict:
        start, end = (datetime.fromisoformat(t.replace("Z", "+00:00")) for t in window.split(","))
        first, last = int(start.timestamp() * 1000) // DAY_MS, (int(end.timestamp() * 1000) - 1) // DAY_MS
        days = {fleet_store.day_of(n).isoformat(): sorted(d) for n, d in self.days.items() if first <= n <= last and d}
        return {"code": 200, "data": {"digest": "hmac-sha256-128", "days": days}}

    def statement(self, month: str) -> dict:
        return {
            "code": 200,
            "data": {"month": month, "currency": "USD", "bill": None, "attributed": self.attributed, "fee": 10.0},
        }


class Page(web.RequestHandler):
    def initialize(self, hub: FakeHub):
        self.hub = hub

    async def get(self, service: str, path: str):
        hub, kind = self.hub, self.hub.kind
        hub.asked.append(f"{path}?{self.request.query}")
        good = hub.digests(self.get_argument("window")) if service == "usage" else hub.statement(path.split("/")[-1])
        if kind == "slow":
            await asyncio.sleep(3)
        if kind in ("403", "500"):
            self.set_status(int(kind))
            return self.finish({"code": int(kind), "message": "no"})
        if kind == "html":
            return self.finish("<html><body>Bad gateway</body></html>")
        if kind == "deep":
            return self.finish("[" * 200_000)
        if kind == "redirect":
            return self.redirect("http://127.0.0.1:9/elsewhere")
        if kind == "names" and service == "usage":
            good["data"]["days"] = {"2026-11-19": ["alice"], "\x1b]0;owned\x07": []}
        if kind == "far day" and service == "usage":
            good["data"]["days"] = {"1999-01-01": [digest(b"k" * 32, "x")]}
        if kind == "euros" and service == "cost":
            good["data"]["currency"] = "EUR"
        if kind == "escapes" and service == "cost":
            good["data"]["currency"] = "\x1b[2J\x07\n"  # a terminal's clear screen and bell
        if kind == "nan" and service == "cost":
            good["data"]["attributed"] = math.nan
        if callable(kind):
            good = kind(service)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(good))


@pytest.fixture
def fake_hubs():
    hubs = []

    def make():
        hubs.append(FakeHub())
        return hubs[-1]

    yield make
    for hub in hubs:
        hub.close()


@pytest.fixture(autouse=True)
def token(monkeypatch):
    for i in range(3):
        monkeypatch.setenv(f"{TOKEN_ENV}_{i}", secrets.token_hex(16))


def some_people(n: int, day: int) -> list[str]:
    return sorted({digest(b"s" * 32, f"person{i}-{day % 3}") for i in range(n)})


def test_the_fleet_database_is_made_by_its_migrations_as_its_models_say(tmp_path):
    url = f"sqlite:///{tmp_path / 'fleet.sqlite'}"
    fleet_store.upgrade(url)
    fleet_store.upgrade(url)  # again: nothing to do
    engine = make_engine(url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": fleet_store.VERSION_TABLE})
        assert compare_metadata(context, FleetBase.metadata) == []
    engine.dispose()


def test_the_first_collection_reaches_back_history_days_and_the_next_asks_only_what_changed(tmp_path, fake_hubs):
    hub = fake_hubs()
    hub.days = {TODAY - n: some_people(5 + n, TODAY - n) for n in range(0, 60)}
    fleet = fleet_config(tmp_path, {"ocean-prod": hub.url}, history_days=45)
    (result,) = asyncio.run(collect(fleet, tmp_path, now_ms=NOW_MS))
    assert result.ok and result.days == 45 and result.months == len(months_between(TODAY - 44, TODAY))
    states, people, months = stored(fleet)
    assert people["ocean-prod"] == {day: set(d) for day, d in hub.days.items() if day > TODAY - 45}
    assert states["ocean-prod"] == (NOW_MS, None, TODAY - 7)  # the last 7 days may still change
    windows = [a for a in hub.asked if a.startswith("people-digests")]
    assert len(windows) == 2  # a month of days a request: 31, then 14
    assert months[("ocean-prod", "2026-11")] == (12.5, 10.0, None)

    # a day later: yesterday's people changed (a late stop), today is new; nothing earlier is asked
    hub.asked.clear()
    hub.days[TODAY] = some_people(2, TODAY)
    hub.days[TODAY + 1] = some_people(3, TODAY + 1)
    (result,) = asyncio.run(collect(fleet, tmp_path, now_ms=NOW_MS + DAY_MS))
    assert result.ok and result.days == 8  # the 7 days asked again, and the new one
    window = next(a for a in hub.asked if a.startswith("people-digests"))
    assert "window=2026-11-14T00%3A00%3A00Z%2C2026-11-22T00%3A00%3A00Z" in window
    # last month's statement too: a bill imported after the month ended changes its fee
    assert [a for a in hub.asked if a.startswith("statements")] == ["statements/2026-10?", "statements/2026-11?"]
    _, people, _ = stored(fleet)
    assert people["ocean-prod"][TODAY] == set(hub.days[TODAY]) and people["ocean-prod"][TODAY + 1] == set(
        hub.days[TODAY + 1]
    )
    assert len(people["ocean-prod"]) == 46
    # and every group's active users counted again, to the new day, for the pages to read
    engine = make_engine(fleet.fleet.database_url)
    with session_maker(engine)() as db:
        span = fleet_store.counted_days(db, fleet.placement())
        counted = fleet_store.counts(db, "hub", TODAY + 1, TODAY + 1)[TODAY + 1]["ocean-prod"]
    engine.dispose()
    assert span == (TODAY - 44, TODAY + 1)
    week = set().union(*(hub.days[d] for d in range(TODAY - 5, TODAY + 2)))
    month = set().union(*(hub.days[d] for d in range(TODAY - 28, TODAY + 2)))
    assert counted == ActiveUsers(len(hub.days[TODAY + 1]), len(week), len(month))

    # --full asks for everything again
    hub.asked.clear()
    (result,) = asyncio.run(collect(fleet, tmp_path, now_ms=NOW_MS + DAY_MS, full=True))
    assert result.ok and result.days == 45


def test_two_collections_at_once_into_postgresql_or_sqlite_beside_a_hubs_tables(tmp_path, fake_hubs, database_url):
    """The fleet's tables in a database a hub's accounting already uses (their own version
    table), on SQLite and a real PostgreSQL; two collections at once take turns (the
    advisory lock, the file lock) and both keep every figure and count."""
    hub = fake_hubs()
    hub.days = {TODAY - n: some_people(3 + n % 4, TODAY - n) for n in range(0, 40)}
    fleet = fleet_config(tmp_path, {"ocean-prod": hub.url}, history_days=30, database_url=database_url)

    async def both():
        return await asyncio.gather(*(collect(fleet, tmp_path, now_ms=NOW_MS) for _ in range(2)))

    first, second = asyncio.run(both())
    assert first[0].ok and second[0].ok, (first[0].error, second[0].error)
    states, people, months = stored(fleet)
    assert people["ocean-prod"] == {day: set(d) for day, d in hub.days.items() if day > TODAY - 30}
    assert states["ocean-prod"][1] is None and months[("ocean-prod", "2026-11")] == (12.5, 10.0, None)
    engine = make_engine(database_url)
    with session_maker(engine)() as db:
        counted = fleet_store.counts(db, "fleet", TODAY, TODAY)[TODAY]["fleet"]
        assert fleet_store.counted_days(db, fleet.placement()) == (TODAY - 29, TODAY)
    engine.dispose()
    week = set().union(*(hub.days[d] for d in range(TODAY - 6, TODAY + 1)))
    month = set().union(*(hub.days[d] for d in range(TODAY - 29, TODAY + 1)))
    assert counted == ActiveUsers(len(hub.days[TODAY]), len(week), len(month))


HOSTILE = {
    "names": "not what the fleet reads: days",
    "far day": "a day it was not asked about",
    "euros": "in 'EUR', the fleet's in USD: nothing is converted",
    "nan": "not what the fleet reads: attributed",
    "html": "not JSON",
    "500": "the hub answered 500",
    "403": f"refused the token in {TOKEN_ENV}_1 (403): it needs the scopes custom:usage:digests",
    "deep": "the hub's answer could not be read (RecursionError)",
    "escapes": "the hub's prices are in '",  # and below: never a control character
    "redirect": "the hub answered a redirect (302), which the fleet does not follow",
    "slow": "no answer within 1 s",
    "down": "no connection",  # in tornado's words, or the system's (below)
    "no token": f"the environment variable {TOKEN_ENV}_1 holding its token is not set",
}


@pytest.mark.parametrize("kind", HOSTILE)
def test_a_hub_that_fails_keeps_its_last_figures_and_the_others_are_collected(tmp_path, fake_hubs, kind, monkeypatch):
    good, bad = fake_hubs(), fake_hubs()
    for hub in (good, bad):
        hub.days = {TODAY - 1: some_people(4, TODAY - 1), TODAY: some_people(6, TODAY)}
    fleet = fleet_config(tmp_path, {"good": good.url, "bad": bad.url}, request_timeout=1)
    assert all(r.ok for r in asyncio.run(collect(fleet, tmp_path, now_ms=NOW_MS)))
    _, before, months_before = stored(fleet)

    good.days[TODAY + 1] = bad.days[TODAY + 1] = some_people(9, TODAY + 1)
    good.attributed = bad.attributed = 99.0
    if kind == "down":
        bad.close()
    elif kind == "no token":
        monkeypatch.delenv(f"{TOKEN_ENV}_1")
    else:
        bad.kind = kind
    results = {r.hub: r for r in asyncio.run(collect(fleet, tmp_path, now_ms=NOW_MS + DAY_MS))}

    failed = results["bad"]
    assert not failed.ok and (HOSTILE[kind] in failed.error or (kind == "down" and "cannot reach" in failed.error))
    assert "keeping its figures as of 2026-11-20 12:00 UTC" in failed.line() and failed.error.isprintable()
    states, after, months = stored(fleet)
    assert after["bad"] == before["bad"] and months[("bad", "2026-11")] == months_before[("bad", "2026-11")]
    assert states["bad"] == (NOW_MS, failed.error, TODAY - 7)  # as of its last full answer
    assert results["good"].ok and after["good"][TODAY + 1] == set(good.days[TODAY + 1])
    assert months[("good", "2026-11")][0] == 99.0


def test_days_missed_while_a_hub_failed_are_asked_for_when_it_answers_again(tmp_path, fake_hubs):
    hub = fake_hubs()
    hub.days = {TODAY - n: some_people(3, TODAY - n) for n in range(30)}
    fleet = fleet_config(tmp_path, {"flaky": hub.url}, history_days=20)
    assert asyncio.run(collect(fleet, tmp_path, now_ms=NOW_MS))[0].ok
    hub.kind = "500"
    for later in range(1, 10):  # nine days down
        assert not asyncio.run(collect(fleet, tmp_path, now_ms=NOW_MS + later * DAY_MS))[0].ok
    hub.kind = "good"
    for later in range(1, 11):
        hub.days[TODAY + later] = some_people(4, TODAY + later)
    (result,) = asyncio.run(collect(fleet, tmp_path, now_ms=NOW_MS + 10 * DAY_MS))
    assert result.ok and result.days == 17  # from the first day not final at its last success
    _, people, _ = stored(fleet)
    assert all(people["flaky"][day] == set(hub.days[day]) for day in range(TODAY - 19, TODAY + 11))


def test_each_hub_needs_a_token_of_its_own(tmp_path):
    from twoi2c_hub.config.loading import ConfigError

    text = yaml.safe_dump(
        {
            "fleet": {"name": "x", "secret_env": SECRET_ENV},
            "clusters": [{"name": "c", "monthly_cost": 1}],
            "communities": [{"name": "a", "fee": 1}],
            "hubs": [
                {"name": f"h{i}", "community": "a", "cluster": "c", "url": f"https://h{i}.example.org",
                 "token_env": "SAME_TOKEN"}
                for i in range(2)
            ],
        }
    )  # fmt: skip
    (tmp_path / "fleet.yaml").write_text(text)
    with pytest.raises(ConfigError) as refused:
        load_fleet(tmp_path / "fleet.yaml")
    assert "hubs[1].token_env: SAME_TOKEN is also hubs[0]'s: give each hub a token of its own" in str(refused.value)


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    answer=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
        max_leaves=12,
    ),
    where=st.sampled_from(["usage", "cost", "data"]),
)
def test_any_answer_at_all_is_collected_or_refused_never_a_traceback(tmp_path_factory, fake_hubs, answer, where):
    hub = fake_hubs()

    def shape(service):
        if where == "data":
            return answer
        good = hub.digests("2026-11-19T00:00:00Z,2026-11-21T00:00:00Z") if service == "usage" else hub.statement("x")
        return {"code": 200, "data": answer} if service == where else good

    hub.kind = shape
    folder = tmp_path_factory.mktemp("fleet")
    fleet = fleet_config(folder, {"any": hub.url}, history_days=2)
    (result,) = asyncio.run(collect(fleet, folder, now_ms=NOW_MS))
    assert result.ok or (result.error and "Traceback" not in result.error)
    hub.close()


def test_the_command_says_which_hubs_were_collected_and_fails_when_one_was_not(tmp_path, fake_hubs, capsys):
    good = fake_hubs()
    good.days = {TODAY: some_people(3, TODAY)}
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{unused.getsockname()[1]}"
    fleet_config(tmp_path, {"good": good.url, "gone": nowhere}, request_timeout=2)
    assert cli(["fleet", "collect", "--config", str(tmp_path / "fleet.yaml")]) == 1
    out, err = capsys.readouterr()
    assert "good: 400 days (" in out and "1 of 2 hubs collected into sqlite:///" in out
    assert "gone: NOT COLLECTED:" in err and "no figures from it yet" in err


# --- a real hub -----------------------------------------------------------------------------------


def test_a_real_hubs_people_and_months_reach_the_fleet_with_a_token_of_the_least_scopes(
    hub_factory, tmp_path, monkeypatch
):
    secret = secrets.token_bytes(32)
    url = f"sqlite:///{tmp_path / 'usage.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    now = int(time.time() * 1000)
    today = now // DAY_MS
    # (who, started, stopped): across midnight, within a day, and one still running
    sessions = [
        ("alice", (today - 2) * DAY_MS + 22 * HOUR_MS, (today - 1) * DAY_MS + 2 * HOUR_MS),
        ("bob", (today - 1) * DAY_MS + 9 * HOUR_MS, (today - 1) * DAY_MS + 11 * HOUR_MS),
        ("carol", now - HOUR_MS, None),
    ]
    with session_maker(engine)() as db:
        for who, started, stopped in sessions:
            start = ServerStart(who, "", started, profile="cpu", cpu_guarantee=1.0, mem_guarantee_bytes=2**31)
            record(db, [ServerStarted(start)])
            if stopped:
                record(db, [ServerStopped(who, "", stopped, "user", started)])
        db.commit()
    engine.dispose()
    config = demo_config()
    config["culling"] = {"enabled": False}
    config["usage"] = {"database_url": url, "fleet_secret_env": SECRET_ENV, "reconcile_interval": 3600}
    (tmp_path / "community.yaml").write_text(yaml.safe_dump(config))
    fleet_token = secrets.token_hex(32)
    extra = f"""
c.JupyterHub.services.append({{"name": "fleet", "api_token": {fleet_token!r}}})
c.JupyterHub.load_roles.append({{"name": "fleet", "services": ["fleet"], "scopes": [
    "custom:usage:digests", "custom:cost:statements",
    "access:services!service=usage", "access:services!service=cost"]}})
"""
    hub = hub_factory(
        str(tmp_path / "community.yaml"), "fleet-collect", extra_config=extra, environment={SECRET_ENV: secret.hex()}
    )
    for service in ("usage", "cost"):
        hub.wait_for(lambda s=service: requests.get(f"{hub.url}/services/{s}/health", timeout=30).ok, what=service)
    fleet = fleet_config(tmp_path, {"real": hub.url}, history_days=10)
    monkeypatch.setenv(f"{TOKEN_ENV}_0", fleet_token)
    (result,) = asyncio.run(collect(fleet, tmp_path, now_ms=now))
    assert result.ok, result.error
    _, people, months = stored(fleet)

    # each day's people, from the sessions above, digested here
    expected: dict[int, set] = {}
    for who, started, stopped in sessions:
        for day in range(started // DAY_MS, ((stopped or now) - 1) // DAY_MS + 1):
            expected.setdefault(day, set()).add(digest(secret, who))
    assert people["real"] == expected
    # each month as the hub's own statement gives it
    assert {month for _, month in months} == set(months_between(today - 9, today)) | {
        f"{datetime.fromtimestamp(now / 1000, UTC).date().replace(day=1) - timedelta(days=1):%Y-%m}"
    }  # the months the days touch, and last month's
    for _, month in months:
        answer = requests.get(
            f"{hub.url}/services/cost/api/v1/statements/{month}",
            headers={"Authorization": f"token {fleet_token}"},
            timeout=30,
        ).json()["data"]
        assert months[("real", month)] == (answer["attributed"], answer["fee"], answer["bill"])
    assert sum(m[0] for m in months.values()) > 0  # the sessions cost something

    # the token reads nothing else: not the hub's users, no person's sessions, no top-up
    fleet_auth = {"Authorization": f"token {fleet_token}"}
    assert hub.api("GET", "/users", token=fleet_token).status_code == 403
    sessions = requests.get(f"{hub.url}/services/usage/api/v1/sessions", headers=fleet_auth, timeout=30)
    assert not any(name in sessions.text for name in ("alice", "bob", "carol"))
    for path in ("allocation", "active-users"):
        answer = requests.get(f"{hub.url}/services/usage/api/v1/{path}", headers=fleet_auth, timeout=30)
        assert answer.status_code == 403 or not any(n in answer.text for n in ("alice", "bob", "carol")), path
    top_up = requests.post(
        f"{hub.url}/services/cost/api/v1/ledger",
        json={"budget": "x", "subject": "alice", "kind": "topup", "amount": 5, "reason": "fleet"},
        headers=fleet_auth,
        timeout=30,
    )
    assert top_up.status_code == 403
    # and the next collection asks only for the last days
    (again,) = asyncio.run(collect(fleet, tmp_path, now_ms=now + 60_000))
    assert again.ok and again.days == 7 + ((now + 60_000) // DAY_MS - today)


def test_months_between_counts_every_month_the_days_touch():
    first = fleet_store.day_number(date(2025, 12, 30))
    assert months_between(first, first + 40) == ["2025-12", "2026-01", "2026-02"]
    assert months_between(first, first) == ["2025-12"]
    assert fleet_store.day_of(fleet_store.day_number(date(2026, 2, 28)) + 1) == date(2026, 3, 1)
