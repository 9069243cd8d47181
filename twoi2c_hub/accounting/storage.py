"""Home storage: each person's home directory size per day, and what it costs.

A day with a measured size is charged `size in GiB x home_gib_month / days in that
month` (the price in force that day), for the part of the day inside the window; a day
without a measure is not charged. By group, a person's storage is shared among the groups
they were in that day (the dated memberships) by the hub's group rule; by profile it is
one row, "(home storage)".
"""

from __future__ import annotations

import calendar
from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session as DB

from .costs import CostBasis, day_of
from .models import DAY_MS, GroupMembership, HomeUsage

GiB = 1024**3
STORAGE_PROFILE = "(home storage)"


def record_home_sizes(db: DB, sizes: dict[str, int], now_ms: int) -> int:
    """Keep today's measures (the largest of the day per person)."""
    if not sizes:
        return 0
    day = now_ms // DAY_MS
    insert = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}[db.get_bind().dialect.name]
    statement = insert(HomeUsage.__table__)
    statement = statement.on_conflict_do_update(
        index_elements=["day", "username"],
        set_={"bytes": statement.excluded.bytes},
        where=HomeUsage.__table__.c.bytes < statement.excluded.bytes,
    )
    db.connection().execute(statement, [{"day": day, "username": u, "bytes": int(b)} for u, b in sizes.items()])
    db.commit()
    return len(sizes)


def storage_cost(
    db: DB, basis: CostBasis, a: int, b: int, aggregate: str, username: str | None = None
) -> dict[str, float]:
    """name -> home storage cost over [a, b)."""
    if not any(table.home_gib_month for table in basis.pricing.tables):
        return {}  # no price for storage: nothing to read
    query = select(HomeUsage.day, HomeUsage.username, HomeUsage.bytes).where(
        HomeUsage.day >= a // DAY_MS, HomeUsage.day < -(-b // DAY_MS)
    )
    if username is not None:
        query = query.where(HomeUsage.username == username)
    rows = db.execute(query).all()
    totals: dict[str, float] = defaultdict(float)
    memberships = _memberships(db, {r.username for r in rows}) if aggregate == "group" else {}
    for day, user, size in rows:
        table = basis.pricing.in_force(day_of(day))
        if table is None or not table.home_gib_month:
            continue
        when = day_of(day)
        overlap = min(b, (day + 1) * DAY_MS) - max(a, day * DAY_MS)
        money = size / GiB * table.home_gib_month / calendar.monthrange(when.year, when.month)[1] * overlap / DAY_MS
        if aggregate == "user":
            totals[user] += money
        elif aggregate == "profile":
            totals[STORAGE_PROFILE] += money
        else:
            groups = [
                g for g, since, until in memberships.get(user, ()) if since <= day * DAY_MS < (until or float("inf"))
            ]
            for group, share in basis.shares(groups).items():
                totals[group] += money * share
    return dict(totals)


def _memberships(db: DB, users: set[str]) -> dict[str, list[tuple[str, int, int | None]]]:
    found: dict[str, list] = defaultdict(list)
    names = sorted(users)
    for start in range(0, len(names), 1000):
        query = select(GroupMembership).where(GroupMembership.username.in_(names[start : start + 1000]))
        for m in db.scalars(query):
            found[m.username].append((m.group_name, m.since_ms, m.until_ms))
    return found
