"""`twoi2c-hub fleet report`: from what was collected, people counted once per hub, cluster,
community and fleet (checked against plain SQL over the names the digests stand for), each
community's money for a month with the clusters' bills read from their files (the worked
example of docs/fleet.md), and the hubs whose figures are stale."""

import contextlib
import io
import json
import random
import sqlite3
from datetime import date, timedelta

import pytest
import yaml
from sqlalchemy import delete

from twoi2c_hub.accounting import fleet_store
from twoi2c_hub.accounting.db import make_engine, session_maker
from twoi2c_hub.accounting.fleet import person_digest
from twoi2c_hub.cli import main as cli
from twoi2c_hub.config.fleet import load_fleet
from twoi2c_hub.paths import examples_dir

SECRET = bytes(range(32))
DAY = date(2026, 11, 30)


@pytest.fixture
def fleet_file(tmp_path):
    """The example fleet, its database and its east bill in `tmp_path`."""
    config = yaml.safe_load((examples_dir() / "fleet" / "fleet.yaml").read_text())
    config["fleet"]["database_url"] = f"sqlite:///{tmp_path / 'fleet.sqlite'}"
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(config))
    fleet_store.upgrade(config["fleet"]["database_url"])
    return path, config


def store(config):
    engine = make_engine(config["fleet"]["database_url"])
    return engine, session_maker(engine)


def report(path, *arguments) -> dict:
    return json.loads(_run(path, "--json", *arguments))


def _run(path, *arguments) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli(["fleet", "report", "--config", str(path), *arguments]) == 0
    return out.getvalue()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_people_are_counted_once_per_cluster_community_and_fleet_as_plain_sql_counts_names(fleet_file, seed):
    path, config = fleet_file
    rng = random.Random(seed)
    hubs = {h["name"]: (h["cluster"], h["community"]) for h in config["hubs"]}
    people = [f"person{i}" for i in range(60)]
    sql = sqlite3.connect(":memory:")
    sql.execute("CREATE TABLE active (hub, cluster, community, day, name)")
    engine, open_db = store(config)
    with open_db() as db:
        for hub, (cluster, community) in hubs.items():
            regulars = rng.sample(people, rng.randrange(1, 30))  # some people use several hubs
            days = {}
            for back in range(45):
                day = DAY - timedelta(days=back)
                names = {p for p in regulars if rng.random() < 0.3}
                days[fleet_store.day_number(day)] = [person_digest(SECRET, n) for n in names]
                sql.executemany(
                    "INSERT INTO active VALUES (?, ?, ?, ?, ?)",
                    [(hub, cluster, community, day.isoformat(), n) for n in names],
                )
            fleet_store.replace_people(db, hub, min(days), max(days), days)
        db.commit()
    engine.dispose()

    def as_sql_counts():
        for aggregate, column in (
            ("hub", "hub"),
            ("cluster", "cluster"),
            ("community", "community"),
            ("fleet", "'fleet'"),
        ):
            counted = report(path, "--day", DAY.isoformat(), "--aggregate", aggregate)["active_users"]
            for window, days in (("daily", 1), ("weekly", 7), ("monthly", 30)):
                first = (DAY - timedelta(days=days - 1)).isoformat()
                expected = dict(
                    sql.execute(
                        f"SELECT {column}, COUNT(DISTINCT name) FROM active WHERE day BETWEEN ? AND ? GROUP BY 1",
                        (first, DAY.isoformat()),
                    )
                )
                assert {name: c[window] for name, c in counted.items() if c[window]} == expected, (aggregate, window)

    as_sql_counts()  # counted from the people kept

    # hubs binned by their people in the 30 days, as 2i2c bins them (from each lower bound)
    thirty = ((DAY - timedelta(days=29)).isoformat(), DAY.isoformat())
    monthly = dict(
        sql.execute("SELECT hub, COUNT(DISTINCT name) FROM active WHERE day BETWEEN ? AND ? GROUP BY hub", thirty)
    )
    bounds = [0, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000]
    expected = {}
    for hub in hubs:
        lower = max(b for b in bounds if b <= monthly.get(hub, 0))
        expected[hub] = f"{lower}-{bounds[bounds.index(lower) + 1]}" if lower < 10000 else "10000+"
    sizes = report(path, "--day", DAY.isoformat())["hubs_by_size"]
    assert list(sizes) == [f"{a}-{b}" for a, b in zip(bounds, bounds[1:])] + ["10000+"]
    assert {hub: size for size, names in sizes.items() for hub in names} == expected

    # counted once after a collection (from a day: all of them, the first time), then read
    def count_after_collection(placement):
        engine, open_db = store(config)
        with open_db() as db:
            fleet_store.save_counts(db, placement, fleet_store.day_number(DAY) - 3, fleet_store.day_number(DAY))
            db.commit()
            span = fleet_store.counted_days(db, placement)
        engine.dispose()
        return span

    placement = load_fleet(path).placement()
    assert count_after_collection(placement) == (
        fleet_store.day_number(DAY - timedelta(days=44)),
        fleet_store.day_number(DAY),
    )
    as_sql_counts()

    # a hub moved to another community since: the counts are not read (it is counted here)
    moved = config["hubs"][0]
    other = next(c["name"] for c in config["communities"] if c["name"] != moved["community"])
    moved["community"] = other
    path.write_text(yaml.safe_dump(config))
    sql.execute("UPDATE active SET community = ? WHERE hub = ?", (other, moved["name"]))
    as_sql_counts()
    # counted again for the new placement, then read: the people themselves are no longer needed
    count_after_collection(load_fleet(path).placement())
    engine, open_db = store(config)
    with open_db() as db:
        db.execute(delete(fleet_store.PersonDay))
        db.commit()
    engine.dispose()
    as_sql_counts()


def test_a_months_money_is_the_worked_example_with_the_bill_read_from_its_file(fleet_file):
    path, config = fleet_file
    bills = path.parent / "bills"
    bills.mkdir()
    (bills / "east-2026.csv").write_text(
        "lineItem/UsageStartDate,lineItem/UnblendedCost,lineItem/CurrencyCode,lineItem/ProductCode\n"
        "2026-11-01T00:00:00Z,600.00,USD,AmazonEC2\n"
        "2026-11-30T00:00:00Z,400.00,USD,AmazonEKS\n"
        "2026-10-31T00:00:00Z,250.00,USD,AmazonEC2\n"  # another month: not this one's
        "2026-12-01T00:00:00Z,99.00,USD,AmazonEC2\n"
    )
    figures = {  # hub: (attributed, its statement's fee), docs/fleet.md's worked example
        "ocean-prod": (300.0, 0.0),
        "ocean-staging": (50.0, 0.0),
        "seismo": (150.0, 120.0),
        "seismo-west": (100.0, 80.0),
        "climate": (200.0, 0.0),
        "class": (0.0, 0.0),
    }
    engine, open_db = store(config)
    with open_db() as db:
        for hub, (attributed, fee) in figures.items():
            fleet_store.save_month(
                db, hub, "2026-11", {"currency": "USD", "attributed_cost": attributed, "fee": fee, "bill": None}, 0
            )
            fleet_store.save_month(  # another month's figures do not count
                db, hub, "2026-10", {"currency": "USD", "attributed_cost": 999.0, "fee": 1.0, "bill": None}, 0
            )
        db.commit()
    engine.dispose()

    money = report(path, "--month", "2026-11")["money"]
    parts = ("attributed_cost", "shared_cost", "cost", "fee", "recovery")
    assert {name: tuple(m[p] for p in parts) for name, m in money.items()} == {
        "climate": ("200.00", "33.34", "233.34", "150.00", "0.6428"),
        "education": ("0.00", "33.33", "33.33", "0.00", "0.0000"),
        "oceanography": ("350.00", "350.00", "700.00", "400.00", "0.5714"),
        "seismology": ("250.00", "183.33", "433.33", "200.00", "0.4615"),
        "fleet": ("800.00", "600.00", "1400.00", "750.00", "0.5357"),
    }  # fmt: skip
    text = _run(path, "--month", "2026-11", "--day", "2026-11-30")
    assert "fleet                      800.00       600.00     1,400.00       750.00   53.57 %" in text


def test_hubs_never_collected_or_failing_are_flagged_stale_and_an_archive_is_not(fleet_file):
    path, config = fleet_file
    engine, open_db = store(config)
    with open_db() as db:
        fleet_store.hub_state(db, "seismo").error = "no answer within 30 s"
        fleet_store.hub_state(db, "seismo").collected_ms = 1_795_000_000_000
        db.commit()
    engine.dispose()
    stale = {s["hub"]: s for s in report(path)["stale"]}
    with_url = {h["name"] for h in config["hubs"] if h.get("url")}
    assert set(stale) == with_url and "class" not in stale  # a hub that left is read from its archive
    assert stale["seismo"]["error"] == "no answer within 30 s"
    text = _run(path)
    assert "Stale: seismo (last collected 2026-11-18 " in text and "; no answer within 30 s)" in text
    assert "Stale: ocean-prod (never collected)" in text


def test_a_day_or_month_that_is_not_one_is_refused_in_words(fleet_file, capsys):
    path, _ = fleet_file
    for arguments in (["--day", "2026-13-01"], ["--month", "2026-1"], ["--month", "november"]):
        assert cli(["fleet", "report", "--config", str(path), *arguments]) == 1
        assert "--day is a date like 2026-11-30 and --month a month like 2026-11" in capsys.readouterr().err


def test_a_cost_window_is_whole_months_or_this_month_so_far():
    from datetime import UTC, datetime

    from twoi2c_hub.services.fleet.report import MAX_MONTHS, whole_months

    def ms(text):
        return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)

    now = ms("2026-12-04T17:00:00")
    assert whole_months(ms("2026-11-01T00:00:00"), ms("2026-12-01T00:00:00"), now) == ["2026-11"]
    assert whole_months(ms("2025-12-01T00:00:00"), ms("2026-02-01T00:00:00"), now) == ["2025-12", "2026-01"]
    assert whole_months(ms("2026-12-01T00:00:00"), now, now) == ["2026-12"]  # `month`: so far
    assert whole_months(ms("2026-10-01T00:00:00"), ms("2027-03-01T00:00:00"), now) == ["2026-10", "2026-11", "2026-12"]
    for start, end in (
        ("2026-11-02T00:00:00", "2026-12-01T00:00:00"),  # not the 1st
        ("2026-11-01T00:00:01", "2026-12-01T00:00:00"),  # not its first instant
        ("2026-11-01T00:00:00", "2026-11-20T00:00:00"),  # ends inside a past month
    ):
        with pytest.raises(ValueError, match="whole months"):
            whole_months(ms(start), ms(end), now)
    with pytest.raises(ValueError, match=f"at most {MAX_MONTHS} months"):
        whole_months(ms("2020-01-01T00:00:00"), ms("2026-12-01T00:00:00"), now)
