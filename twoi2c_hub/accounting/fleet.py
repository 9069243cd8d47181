"""The fleet's people: a keyed digest for each person, and active users counted once.

Each hub sends, for each UTC day, the digests of the people active that day, never their
names (`person_digest`, computed on the hub with the fleet secret). From those sets this
module counts daily, weekly and monthly active users per hub, per cluster, per community
and fleet-wide: a person's digest is the same on every hub (the same key, the same name),
so a person using two hubs of one cluster is one person of that cluster, and one of the
fleet. It is pure: no database, no HTTP, no clock.

Windows are whole UTC days ending on, and including, the day asked about: daily is that
day, weekly the 7 days from 6 days before, monthly the 30 days from 29 days before. Read
at the end of the day, this is what JupyterHub's `jupyterhub_active_users{period=...}`
metric says (a last activity within 24 hours, 7 days, 30 days), to the day rather than to
the second; it is also how the hub's own usage service counts them
(`accounting.activity.active_users`) and what 2i2c's KPIs chart (the 30-day figure,
sampled daily).

The money (each community's cost, fee and recovery) is in `accounting.fleet_money`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Set
from datetime import date, timedelta
from typing import Literal, NamedTuple

# RFC 2104 section 3: a key shorter than the hash's output (32 bytes) weakens the HMAC
MIN_SECRET_BYTES = 32
# RFC 2104 section 5: a truncated HMAC keeps at least half the hash (and 80 bits)
DIGEST_HEX_CHARS = 32

WINDOW_DAYS = {"daily": 1, "weekly": 7, "monthly": 30}
Aggregate = Literal["hub", "cluster", "community", "fleet"]
AGGREGATES: tuple[Aggregate, ...] = ("hub", "cluster", "community", "fleet")
FLEET = "fleet"  # the one group of aggregate=fleet

# 2i2c's bins of monthly active users (kpis, book/cloud.md): [0, 5), [5, 10), ... [5000, 10000)
SIZE_BINS = (0, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)

# hub -> UTC day -> the digests of the people active on that hub that day
Activity = Mapping[str, Mapping[date, Set[str]]]


class Placement(NamedTuple):
    """Where a hub is: its cluster and its community (the fleet config's placement())."""

    cluster: str
    community: str


class ActiveUsers(NamedTuple):
    """People active in the day, the 7 days and the 30 days ending on a day."""

    daily: int
    weekly: int
    monthly: int


def person_digest(secret: bytes, username: str) -> str:
    """The fleet's name for a person: HMAC-SHA256 of the hub's username (UTF-8) keyed
    with the fleet secret, the first 128 bits in hex (32 characters).

    Keyed, so that nobody without the secret can test a guess (an unkeyed hash of a
    GitHub login is undone by hashing a list of logins). Truncated to 128 bits: half of
    SHA-256's output, the least RFC 2104 advises keeping, for a key half as long in the
    fleet's largest table; that any two of a million people share a digest (and are
    counted as one) has odds below one in 10^26.

    The same person is one digest only under the same username: hubs whose
    authenticators name people alike (the same GitHub login, the same CILogon address)
    count them once; a hub that anonymises names with a secret of its own
    (`auth.anonymize_usernames`) or uses another provider gives them another digest.
    """
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(
            f"the fleet secret is {len(secret)} bytes: it needs at least {MIN_SECRET_BYTES} "
            "(e.g. `openssl rand -hex 32`)"
        )
    digest = hmac.new(secret, username.encode("utf-8"), hashlib.sha256).hexdigest()
    return digest[:DIGEST_HEX_CHARS]


def window(day: date, days: int) -> tuple[date, date]:
    """(first, last) day of the `days` days ending on `day`, both included."""
    if days < 1:
        raise ValueError(f"a window is at least one day, not {days}")
    return day - timedelta(days=days - 1), day


def people(activity: Activity, hubs: Iterable[str], first: date, last: date) -> set[str]:
    """The digests active on any of `hubs` on any day from `first` to `last` (included):
    each person once, however many hubs and days."""
    found: set[str] = set()
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    for hub in hubs:
        by_day = activity.get(hub, {})
        for day in days:
            found |= by_day.get(day, frozenset())
    return found


def groups(placement: Mapping[str, tuple[str, str]], aggregate: Aggregate) -> dict[str, list[str]]:
    """The hubs of each hub, cluster, community or the fleet, by name, sorted."""
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)}, not {aggregate!r}")
    found: dict[str, list[str]] = {}
    for hub in sorted(placement):
        cluster, community = placement[hub]
        name = {"hub": hub, "cluster": cluster, "community": community, "fleet": FLEET}[aggregate]
        found.setdefault(name, []).append(hub)
    return dict(sorted(found.items()))


def active_users(
    activity: Activity, placement: Mapping[str, tuple[str, str]], day: date, aggregate: Aggregate
) -> dict[str, ActiveUsers]:
    """Daily, weekly and monthly active users of every hub, cluster, community or the
    fleet on `day`, each person counted once per group (a group with nobody active: 0).

    A hub with activity but not in `placement` is not counted (a hub the config no
    longer lists is not part of the fleet's figures)."""
    windows = {name: window(day, days) for name, days in WINDOW_DAYS.items()}
    # each hub's people in each window, once; a group's people are the union of its hubs'
    by_hub = {hub: {name: people(activity, [hub], *w) for name, w in windows.items()} for hub in placement}
    counts = {}
    for name, hubs in groups(placement, aggregate).items():
        sizes = [len(set().union(*(by_hub[hub][window_name] for hub in hubs))) for window_name in WINDOW_DAYS]
        counts[name] = ActiveUsers(*sizes)
    return counts


def active_users_by_day(
    activity: Activity, placement: Mapping[str, tuple[str, str]], first: date, last: date, aggregate: Aggregate
) -> dict[date, dict[str, ActiveUsers]]:
    """`active_users` for every day from `first` to `last` (included): the series the
    trend charts draw."""
    series = {}
    day = first
    while day <= last:
        series[day] = active_users(activity, placement, day, aggregate)
        day += timedelta(days=1)
    return series


def count_days(
    days: Iterable[tuple[date, Mapping[str, Set[str]]]], placement: Mapping[str, tuple[str, str]], first: date
) -> Iterator[tuple[date, Aggregate, str, ActiveUsers]]:
    """Every hub's, cluster's, community's and the fleet's active users on each day from
    `first`, in one pass over consecutive days of people (each day with hub -> digests,
    from 29 days before `first`: the monthly figure of `first` reads them): the figures
    `active_users` gives day by day, for every aggregate at once. A group with nobody in
    the 30 days is left out (its figures are 0)."""
    named = {aggregate: groups(placement, aggregate) for aggregate in AGGREGATES}
    longest = max(WINDOW_DAYS.values())
    recent: deque[dict[tuple[str, str], Set[str]]] = deque(maxlen=longest)
    for day, by_hub in days:
        # each group's people that day: its hubs' together, each person once
        people_today: dict[tuple[str, str], Set[str]] = {}
        for aggregate, hubs_of in named.items():
            for name, hubs in hubs_of.items():
                sets = [by_hub[hub] for hub in hubs if by_hub.get(hub)]
                if sets:
                    people_today[aggregate, name] = sets[0] if len(sets) == 1 else set().union(*sets)
        recent.append(people_today)
        if day < first:
            continue
        week = list(recent)[-WINDOW_DAYS["weekly"] :]
        for aggregate, hubs_of in named.items():
            for name in hubs_of:
                group = (aggregate, name)
                month = [d[group] for d in recent if group in d]
                if not month:
                    continue
                weekly = len(set().union(*(d[group] for d in week if group in d)))
                yield (
                    day,
                    aggregate,
                    name,
                    ActiveUsers(len(people_today.get(group, ())), weekly, len(set().union(*month))),
                )


def size_bin(monthly_active_users: float) -> str:
    """The bin of a hub's monthly active users: "0-5", "5-10", ... "5000-10000" (each
    from its lower bound, included, to its upper bound, excluded, as 2i2c's `pd.cut(...,
    right=False)`), and "10000+" (which 2i2c's chart leaves out)."""
    if monthly_active_users < 0:
        raise ValueError(f"a number of people is not negative: {monthly_active_users}")
    for lower, upper in zip(SIZE_BINS, SIZE_BINS[1:]):
        if monthly_active_users < upper:
            return f"{lower}-{upper}"
    return f"{SIZE_BINS[-1]}+"


def hubs_by_size(monthly_active_users: Mapping[str, float]) -> dict[str, list[str]]:
    """The hubs in each bin of monthly active users, every bin listed in order (an empty
    one too, as a chart's axis shows it).

    2i2c bins each hub's mean of the daily 30-day figure over the period charted, after
    leaving out staging hubs and the days a hub had nobody; pass that mean to chart as
    they do, or one day's figure. A hub with nobody is in "0-5" here."""
    bins: dict[str, list[str]] = {size_bin(lower): [] for lower in SIZE_BINS}
    for hub in sorted(monthly_active_users):
        bins[size_bin(monthly_active_users[hub])].append(hub)
    return bins
