"""A community that left keeps its history in the fleet: a hub's export archive is read
once (imported into a database of its own, as `twoi2c-hub import` does), its people
digested by the fleet with the fleet secret and its months stated with the archived
prices and fee; an archive that cannot be read fails alone, saying why."""

import asyncio
import hashlib
import hmac
import secrets
from datetime import UTC, datetime

import pytest
import yaml
from sqlalchemy import select

from twoi2c_hub.accounting.bills import Fee, statement
from twoi2c_hub.accounting.costs import CostBasis
from twoi2c_hub.accounting.db import make_engine, session_maker, upgrade
from twoi2c_hub.accounting.events import ServerStart, ServerStarted, ServerStopped
from twoi2c_hub.accounting.fleet_store import HubMonthFigures, PersonDay
from twoi2c_hub.accounting.models import DAY_MS, HOUR_MS
from twoi2c_hub.accounting.recording import record
from twoi2c_hub.cli import main as cli
from twoi2c_hub.config.fleet import load_fleet
from twoi2c_hub.config.loading import load_config
from twoi2c_hub.paths import demo_config
from twoi2c_hub.services.fleet.collect import collect

SECRET_ENV = "TWOI2C_TEST_ARCHIVE_SECRET"
NOW_MS = int(datetime(2026, 11, 20, 12, tzinfo=UTC).timestamp() * 1000)
SESSIONS = [  # (who, started, hours): October and November, one across midnight
    ("alice", datetime(2026, 10, 3, 9, tzinfo=UTC), 3),
    ("bob", datetime(2026, 10, 3, 22, tzinfo=UTC), 4),
    ("alice", datetime(2026, 11, 2, 10, tzinfo=UTC), 2),
    ("carol", datetime(2026, 11, 10, 8, tzinfo=UTC), 30),
]


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@pytest.fixture
def left_hub(tmp_path):
    """The archive of a hub that left (its sessions, its config with prices and a fee)."""
    url = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    with session_maker(engine)() as db:
        for who, started, hours in SESSIONS:
            start = ServerStart(who, "", ms(started), profile="cpu", cpu_guarantee=2.0, mem_guarantee_bytes=4 * 2**30)
            stop = ServerStopped(who, "", ms(started) + hours * HOUR_MS, "user", ms(started))
            record(db, [ServerStarted(start), stop])
        db.commit()
    config = demo_config()
    config["pricing"]["fee"] = {"monthly": 25, "percent": 10}
    (tmp_path / "community.yaml").write_text(yaml.safe_dump(config))
    assert cli(["export", "--out", str(tmp_path / "gone.tar"), "--config", str(tmp_path / "community.yaml"),
                "--url", url]) == 0  # fmt: skip
    # the statements as the hub itself would have made them, for the test to compare
    community = load_config(tmp_path / "community.yaml")
    pricing = community.pricing
    basis = CostBasis(
        pricing.to_pricing(),
        community.instance_catalog(),
        group_rule=pricing.group_rule,
        primary_groups=tuple(pricing.primary_groups),
    )
    with session_maker(engine)() as db:
        expected = {f"2026-{m:02d}": statement(db, basis, 2026, m, Fee(25, 10), NOW_MS) for m in (10, 11)}
    engine.dispose()
    return expected


def fleet_file(tmp_path, archive="gone.tar"):
    (tmp_path / "fleet.yaml").write_text(
        yaml.safe_dump(
            {
                "fleet": {"name": "x", "secret_env": SECRET_ENV, "database_url": f"sqlite:///{tmp_path / 'f.sqlite'}"},
                "clusters": [{"name": "c", "monthly_cost": 10}],
                "communities": [{"name": "gone", "fee": "from_hub"}],
                "hubs": [{"name": "gone-hub", "community": "gone", "cluster": "c", "archive": archive}],
            }
        )
    )
    return load_fleet(tmp_path / "fleet.yaml")


def stored(fleet):
    engine = make_engine(fleet.fleet.database_url)
    with session_maker(engine)() as db:
        people: dict = {}
        for row in db.scalars(select(PersonDay)):
            people.setdefault(row.day, set()).add(row.digest)
        months = {m.month: (m.attributed_cost, m.fee, m.bill) for m in db.scalars(select(HubMonthFigures))}
    engine.dispose()
    return people, months


def test_a_hub_that_left_keeps_its_people_and_months_in_the_fleet(tmp_path, left_hub, monkeypatch):
    secret = secrets.token_bytes(32)
    monkeypatch.setenv(SECRET_ENV, secret.hex())
    fleet = fleet_file(tmp_path)
    (result,) = asyncio.run(collect(fleet, tmp_path, now_ms=NOW_MS))
    assert result.ok, result.error
    people, months = stored(fleet)

    expected: dict = {}
    for who, started, hours in SESSIONS:
        first, last = ms(started) // DAY_MS, (ms(started) + hours * HOUR_MS - 1) // DAY_MS
        for day in range(first, last + 1):
            expected.setdefault(day, set()).add(hmac.new(secret, who.encode(), hashlib.sha256).hexdigest()[:32])
    assert people == expected
    assert months == {m: (s["attributed"], s["fee"], s["bill"]) for m, s in left_hub.items()}
    assert all(s["attributed"] > 0 and s["fee"] > 25 for s in left_hub.values())  # 25 a month + 10 %

    # read once: the next collection keeps it and says so
    (again,) = asyncio.run(collect(fleet, tmp_path, now_ms=NOW_MS + DAY_MS))
    assert again.ok and "nothing new" in again.line()
    assert stored(fleet) == (people, months)


def test_an_archive_that_cannot_be_read_fails_alone_saying_why(tmp_path, left_hub, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, secrets.token_hex(32))
    (tmp_path / "garbage.tar").write_bytes(b"not a tar at all" * 100)
    for archive, words in (("garbage.tar", "its archive cannot be read"), ("missing.tar", "no archive at ")):
        (result,) = asyncio.run(collect(fleet_file(tmp_path, archive), tmp_path, now_ms=NOW_MS))
        assert not result.ok and words in result.error, result.error
    monkeypatch.setenv(SECRET_ENV, "tooshort")
    (result,) = asyncio.run(collect(fleet_file(tmp_path), tmp_path, now_ms=NOW_MS))
    assert not result.ok and f"the fleet secret in {SECRET_ENV} is unset, not hex or shorter" in result.error
