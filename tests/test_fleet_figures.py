"""The fleet's figures: people counted once by their digests (checked against plain SQL
over the usernames), hubs binned by size as 2i2c bins them, and each community's cost,
fee and recovery, whose parts add up to the bills to the cent."""

import sqlite3
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twoi2c_hub.accounting.fleet import (
    SIZE_BINS,
    ActiveUsers,
    active_users,
    active_users_by_day,
    count_days,
    hubs_by_size,
    person_digest,
    size_bin,
)
from twoi2c_hub.accounting.fleet_money import HubMonth, month_money, split_cents
from twoi2c_hub.config.fleet import load_fleet

SECRET = bytes(range(32))
FAST = settings(max_examples=60, deadline=None, database=None)
D = Decimal


# --- the digest ----------------------------------------------------------------------


def test_the_digest_is_rfc_4231s_hmac_sha256_cut_to_128_bits():
    # RFC 4231, test case 6: a key longer than SHA-256's block
    key = b"\xaa" * 131
    data = "Test Using Larger Than Block-Size Key - Hash Key First"
    assert person_digest(key, data) == "60e431591ee0b67f0d8a26aacbf5b77f"


def test_a_digest_names_nobody_and_depends_on_the_secret():
    digest = person_digest(SECRET, "alice")
    assert len(digest) == 32 and int(digest, 16) >= 0 and "alice" not in digest
    assert person_digest(SECRET, "alice") == digest  # the same person on every hub
    assert person_digest(SECRET, "Alice") != digest  # hubs must name people alike
    assert person_digest(bytes(reversed(SECRET)), "alice") != digest  # another fleet, another name


def test_a_short_secret_is_refused():
    with pytest.raises(ValueError, match="the fleet secret is 16 bytes: it needs at least 32"):
        person_digest(b"0123456789abcdef", "alice")


# --- active users --------------------------------------------------------------------

PLACEMENT = {"a1": ("east", "ocean"), "a2": ("east", "ocean"), "b1": ("east", "seismo"), "c1": ("west", "seismo")}
DAY = date(2026, 11, 30)


def activity_of(rows):
    """hub -> day -> digests, from (hub, day, username) rows."""
    found = {}
    for hub, day, username in rows:
        found.setdefault(hub, {}).setdefault(day, set()).add(person_digest(SECRET, username))
    return found


def test_a_person_on_two_hubs_of_a_cluster_counts_once_there_and_in_the_fleet():
    activity = activity_of([("a1", DAY, "ana"), ("a2", DAY, "ana"), ("b1", DAY, "ana"), ("c1", DAY, "ana")])
    assert active_users(activity, PLACEMENT, DAY, "hub") == {h: ActiveUsers(1, 1, 1) for h in PLACEMENT}
    assert active_users(activity, PLACEMENT, DAY, "cluster") == {"east": (1, 1, 1), "west": (1, 1, 1)}
    assert active_users(activity, PLACEMENT, DAY, "community") == {"ocean": (1, 1, 1), "seismo": (1, 1, 1)}
    assert active_users(activity, PLACEMENT, DAY, "fleet") == {"fleet": (1, 1, 1)}


def test_windows_are_the_day_the_7_days_and_the_30_days_ending_on_it():
    rows = [("a1", DAY, "today"), ("a1", DAY - timedelta(days=6), "week"), ("a1", DAY - timedelta(days=29), "month")]
    rows += [("a1", DAY - timedelta(days=30), "too-old"), ("a1", DAY + timedelta(days=1), "tomorrow")]
    activity = activity_of(rows)
    assert active_users(activity, PLACEMENT, DAY, "hub")["a1"] == ActiveUsers(daily=1, weekly=2, monthly=3)
    # a quiet hub is listed, with nobody
    assert active_users(activity, PLACEMENT, DAY, "hub")["c1"] == ActiveUsers(0, 0, 0)
    series = active_users_by_day(activity, PLACEMENT, DAY, DAY + timedelta(days=1), "fleet")
    assert series == {DAY: {"fleet": (1, 2, 3)}, DAY + timedelta(days=1): {"fleet": (1, 2, 3)}}


def test_an_unknown_aggregate_is_refused():
    with pytest.raises(ValueError, match="aggregate must be one of hub, cluster, community, fleet, not 'user'"):
        active_users({}, PLACEMENT, DAY, "user")


SQL_GROUP = {"hub": "hub", "cluster": "cluster", "community": "community", "fleet": "'fleet'"}


def sql_counts(db, aggregate: str, day: date) -> dict[str, ActiveUsers]:
    """COUNT(DISTINCT username) per group over each window, straight from the rows."""
    counts = {}
    for days in (1, 7, 30):
        query = (
            f"SELECT {SQL_GROUP[aggregate]}, COUNT(DISTINCT username) FROM activity "
            f"WHERE day BETWEEN ? AND ? GROUP BY 1"
        )
        for group, n in db.execute(query, (day.toordinal() - days + 1, day.toordinal())):
            counts.setdefault(group, []).append((days, n))
    return counts


@FAST
@given(
    places=st.lists(
        st.tuples(st.sampled_from(["east", "west"]), st.sampled_from(["x", "y", "z"])), min_size=1, max_size=5
    ),
    rows=st.lists(
        st.tuples(st.integers(0, 4), st.integers(0, 40), st.sampled_from(["ana", "bo", "cy", "di", "ed", "fa"])),
        max_size=80,
    ),
    offset=st.integers(0, 45),
)
def test_digests_count_as_usernames_do_in_sql(places, rows, offset):
    placement = {f"hub{i}": place for i, place in enumerate(places)}
    start = date(2026, 1, 1)
    rows = [(f"hub{i % len(places)}", start + timedelta(days=d), name) for i, d, name in rows]
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE activity (hub TEXT, cluster TEXT, community TEXT, day INTEGER, username TEXT)")
    db.executemany(
        "INSERT INTO activity VALUES (?, ?, ?, ?, ?)",
        [(hub, *placement[hub], day.toordinal(), name) for hub, day, name in rows],
    )
    activity = activity_of(rows)
    day = start + timedelta(days=offset)
    for aggregate in SQL_GROUP:
        ours = active_users(activity, placement, day, aggregate)
        theirs = sql_counts(db, aggregate, day)
        for group, figures in ours.items():
            by_window = dict(theirs.get(group, []))
            assert figures == ActiveUsers(by_window.get(1, 0), by_window.get(7, 0), by_window.get(30, 0)), group
        assert set(theirs) <= set(ours)


@FAST
@given(
    places=st.lists(
        st.tuples(st.sampled_from(["east", "west"]), st.sampled_from(["x", "y", "z"])), min_size=1, max_size=5
    ),
    rows=st.lists(
        st.tuples(st.integers(0, 4), st.integers(0, 70), st.sampled_from(["ana", "bo", "cy", "di", "ed", "fa"])),
        max_size=120,
    ),
    first=st.integers(0, 70),
)
def test_counting_every_day_in_one_pass_gives_each_days_figures(places, rows, first):
    """The counts kept after a collection (`count_days`, every aggregate in one pass) are
    `active_users` of each day, computed day by day; a group with nobody is left out."""
    placement = {f"hub{i}": place for i, place in enumerate(places)}
    start = date(2026, 1, 1)
    activity = activity_of([(f"hub{i % len(places)}", start + timedelta(days=d), name) for i, d, name in rows])
    activity["not-in-the-fleet"] = {start: {"zed"}}  # a hub the config no longer lists
    first_day = start + timedelta(days=first)
    last_day = start + timedelta(days=75)
    days = [first_day - timedelta(days=29) + timedelta(days=n) for n in range((last_day - first_day).days + 30)]
    by_day = {day: {hub: people[day] for hub, people in activity.items() if day in people} for day in days}
    counted = {}
    for day, aggregate, name, figures in count_days(((day, by_day[day]) for day in days), placement, first_day):
        counted[day, aggregate, name] = figures
    for day in days[29:]:
        for aggregate in SQL_GROUP:
            for name, figures in active_users(activity, placement, day, aggregate).items():
                assert counted.get((day, aggregate, name), ActiveUsers(0, 0, 0)) == figures, (day, aggregate, name)
    assert all(figures.monthly for figures in counted.values())  # nobody's groups are not kept
    assert {day for day, _, _ in counted} <= set(days[29:])


@pytest.mark.parametrize(
    "users, expected",
    [(0, "0-5"), (4.99, "0-5"), (5, "5-10"), (24, "10-25"), (250, "250-500"), (9999, "5000-10000"), (10000, "10000+")],
)
def test_hubs_are_binned_from_each_lower_bound_as_2i2c_bins_them(users, expected):
    assert size_bin(users) == expected


def test_every_bin_is_listed_in_order_empty_ones_too():
    bins = hubs_by_size({"big": 1200, "small": 3, "tiny": 0, "mid": 60.5})
    assert list(bins) == [f"{lo}-{hi}" for lo, hi in zip(SIZE_BINS, SIZE_BINS[1:])] + ["10000+"]
    assert bins["0-5"] == ["small", "tiny"] and bins["50-100"] == ["mid"] and bins["1000-2500"] == ["big"]
    assert sum(len(hubs) for hubs in bins.values()) == 4


# --- money ---------------------------------------------------------------------------

EXAMPLE_MONTH = {
    "ocean-prod": HubMonth(D("300")),
    "ocean-staging": HubMonth(D("50")),
    "seismo": HubMonth(D("150"), fee=D("120")),
    "seismo-west": HubMonth(D("100"), fee=D("80")),
    "climate": HubMonth(D("200")),
    "class": HubMonth(D("0")),
}


def test_the_worked_example_of_the_docs():
    """docs/fleet.md's example, from examples/fleet/fleet.yaml."""
    config = load_fleet(Path(__file__).parent.parent / "examples" / "fleet" / "fleet.yaml")
    bills = {"east": D("1000"), "west": config.clusters[1].monthly_cost}
    month = month_money(config.placement(), config.sharing(), config.fees(), bills, EXAMPLE_MONTH)
    east, west = month.clusters["east"], month.clusters["west"]
    assert (east.attributed_cost, east.shared_cost) == (D("500.00"), D("500.00"))
    assert east.shares == {"oceanography": D("350.00"), "seismology": D("150.00")}
    assert (west.attributed_cost, west.shared_cost) == (D("300.00"), D("100.00"))
    assert west.shares == {"climate": D("33.34"), "education": D("33.33"), "seismology": D("33.33")}
    table = {
        name: (c.attributed_cost, c.shared_cost, c.cost, c.fee, c.recovery) for name, c in month.communities.items()
    }
    assert table == {
        "climate": (D("200.00"), D("33.34"), D("233.34"), D("150.00"), D("0.6428")),
        "education": (D("0.00"), D("33.33"), D("33.33"), D("0.00"), D("0.0000")),
        "oceanography": (D("350.00"), D("350.00"), D("700.00"), D("400.00"), D("0.5714")),
        "seismology": (D("250.00"), D("183.33"), D("433.33"), D("200.00"), D("0.4615")),
    }
    assert month.total.cost == D("1400.00") and month.total.fee == D("750.00") and month.total.recovery == D("0.5357")


def test_a_cluster_without_a_bill_costs_what_its_hubs_were_attributed():
    month = month_money({"h": ("c", "x")}, {"c": ("even", {})}, {"x": D(10)}, {}, {"h": HubMonth(D("12.345"))})
    assert month.clusters["c"].bill is None and month.clusters["c"].shares == {}
    assert month.communities["x"].cost == month.total.cost == D("12.34")  # half to even


def test_fixed_shares_are_paid_by_a_community_whose_hub_was_absent():
    placement = {"h1": ("c", "x"), "h2": ("c", "y")}
    sharing = {"c": ("fixed", {"x": D("0.25"), "y": D("0.75")})}
    month = month_money(placement, sharing, {"x": D(5), "y": D(7)}, {"c": D("100")}, {"h1": HubMonth(D("20"))})
    assert month.clusters["c"].shares == {"x": D("20.00"), "y": D("60.00")}
    assert month.communities["y"] == (D("0.00"), D("60.00"), D("60.00"), D("0.00"), D("0.0000"))  # not billed


def test_shared_cost_nobody_is_on_the_cluster_to_take_stays_unallocated():
    month = month_money({"h": ("c", "x")}, {"c": ("even", {}), "d": ("even", {})}, {"x": D(0)}, {"d": D(9)}, {})
    assert month.clusters["d"].unallocated == month.unallocated == D("9.00") and month.total.cost == D("9.00")
    assert month.total.recovery == D("0.0000") and month.communities == {}


def test_split_cents_refuses_fractions_of_a_cent_and_empty_weights():
    assert split_cents(D("100.00"), {"b": 1, "a": 1, "c": 1}) == {"a": D("33.34"), "b": D("33.33"), "c": D("33.33")}
    with pytest.raises(ValueError, match="not a whole number of cents"):
        split_cents(D("0.005"), {"a": 1})
    with pytest.raises(ValueError, match="not all 0"):
        split_cents(D("1.00"), {"a": 0})


cents = st.integers(-(10**6), 10**7).map(lambda n: Decimal(n) / 100)
costs = st.integers(0, 10**7).map(lambda n: Decimal(n) / 1000)  # tenths of a cent: rounded


@st.composite
def fleets(draw):
    clusters = {
        f"k{i}": draw(st.sampled_from(["by_attributed_cost", "even", "fixed"])) for i in range(draw(st.integers(1, 3)))
    }
    placement = {
        f"h{i}": (draw(st.sampled_from(sorted(clusters))), draw(st.sampled_from(["x", "y", "z"])))
        for i in range(draw(st.integers(1, 6)))
    }
    sharing = {}
    for name, rule in clusters.items():
        on_it = sorted({community for cluster, community in placement.values() if cluster == name})
        shares = {}
        if rule == "fixed":
            if not on_it:
                rule = "even"
            else:
                weights = [draw(st.integers(1, 9)) for _ in on_it]
                shares = {c: Decimal(w) / sum(weights) for c, w in zip(on_it, weights)}
        sharing[name] = (rule, shares)
    hubs = {hub: HubMonth(draw(costs), draw(costs)) for hub in placement if draw(st.booleans())}
    bills = {name: draw(st.none() | cents) for name in clusters}
    fees = {c: draw(st.just("from_hub") | costs) for c in ("x", "y", "z")}
    return placement, sharing, fees, bills, hubs


@FAST
@given(fleets())
def test_the_money_adds_up_to_the_cent(fleet):
    placement, sharing, fees, bills, hubs = fleet
    month = month_money(placement, sharing, fees, bills, hubs)
    for name, cluster in month.clusters.items():
        assert cluster.cost == (cluster.bill if cluster.bill is not None else cluster.attributed_cost)
        assert cluster.attributed_cost + cluster.shared_cost == cluster.cost
        assert sum(cluster.shares.values(), Decimal(0)) + cluster.unallocated == cluster.shared_cost
        assert cluster.unallocated == 0 or not cluster.shares
        if cluster.shares:  # each share within a cent of its exact part, by the cluster's rule
            rule, fixed = sharing[name]
            weights = expected_weights(rule, fixed, name, placement, month.hubs)
            total = sum(weights.values())
            for community, share in cluster.shares.items():
                exact = Fraction(cluster.shared_cost) * weights[community] / total
                assert abs(Fraction(share) - exact) < Fraction(1, 100)
    for community in month.communities.values():
        assert community.attributed_cost + community.shared_cost == community.cost
    assert sum((c.cost for c in month.communities.values()), Decimal(0)) + month.unallocated == month.total.cost
    assert sum((c.cost for c in month.clusters.values()), Decimal(0)) == month.total.cost
    assert sum((c.fee for c in month.communities.values()), Decimal(0)) == month.total.fee
    assert month.total.attributed_cost == sum(month.hubs.values(), Decimal(0))
    assert all(value == value.quantize(Decimal("0.01")) for value in month.hubs.values())


def expected_weights(rule, fixed, cluster, placement, attributed) -> dict[str, Fraction]:
    """The cluster's rule written out again: whose hubs are on it, weighed how."""
    by_community = {}
    for hub, cost in attributed.items():
        if placement[hub][0] == cluster:
            by_community[placement[hub][1]] = by_community.get(placement[hub][1], 0) + Fraction(cost)
    if rule == "fixed":
        return {c: Fraction(w) for c, w in fixed.items()}
    if rule == "by_attributed_cost" and any(by_community.values()):
        return by_community
    return {c: Fraction(1) for c in by_community}  # even, or nobody's hub cost anything


def test_a_cluster_whose_hubs_cost_nothing_splits_as_its_rule_says():
    placement = {"h1": ("c", "x"), "h2": ("c", "y")}
    hubs = {"h1": HubMonth(D(0)), "h2": HubMonth(D(0))}
    for rule, shares, expected in [
        ("by_attributed_cost", {}, {"x": D("50.00"), "y": D("50.00")}),  # no cost to weigh: evenly
        ("even", {}, {"x": D("50.00"), "y": D("50.00")}),
        ("fixed", {"x": D("0.1"), "y": D("0.9")}, {"x": D("10.00"), "y": D("90.00")}),
    ]:
        month = month_money(placement, {"c": (rule, shares)}, {"x": D(0), "y": D(0)}, {"c": D(100)}, hubs)
        assert month.clusters["c"].shares == expected, rule
