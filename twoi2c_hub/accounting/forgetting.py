"""Forgetting people: their name replaced by a random pseudonym everywhere it is stored,
so every figure stays where it was counted and every report's totals stay the same.

- `forget(db, username)`: all of one person's rows (`twoi2c-hub forget USER`), when they
  leave the community or ask to be forgotten;
- `expire(db, before_ms)`: the rows older than a retention period (`usage.retention_months`),
  each person's old rows under one pseudonym of their own, so that old figures still add
  up per (unnamed) person.

The pseudonyms are random, not derived from the name: nobody can find a person's rows by
working out their pseudonym. What is replaced: the username in the sessions, the dated
group memberships, every per-person rollup, home storage, and a person's budget ledger
entries and notices (as subject and as the admin who made them). Free text (a ledger
entry's reason) is kept as written.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlalchemy import Column, MetaData, String, Table, select, true, update
from sqlalchemy.orm import Session as DB

from .models import (
    DAY_MS,
    BudgetNotice,
    DailyUserGroupCost,
    DailyUserGroupUsage,
    DailyUserGroupUse,
    DailyUserProfileCost,
    DailyUserProfileUsage,
    DailyUserProfileUse,
    DailyUserUsage,
    GroupMembership,
    HomeUsage,
    LedgerEntry,
    MonthlyUserCost,
    MonthlyUserUsage,
    ServerSession,
)

PREFIX = "forgotten-"
_DAILY = [
    DailyUserUsage,
    DailyUserProfileUsage,
    DailyUserGroupUsage,
    DailyUserProfileCost,
    DailyUserGroupCost,
    DailyUserProfileUse,
    DailyUserGroupUse,
]
_MONTHLY = [MonthlyUserUsage, MonthlyUserCost]


def pseudonym() -> str:
    return PREFIX + secrets.token_hex(6)


def _renames(before_ms: int | None) -> list[tuple]:
    """(a column holding a username, the condition that its row is old enough): every
    row when `before_ms` is None."""
    day = month = 0
    if before_ms is not None:
        moment = datetime.fromtimestamp(before_ms / 1000, UTC)
        day, month = before_ms // DAY_MS, moment.year * 12 + moment.month - 1

    def older(column, bound):
        return true() if before_ms is None else column < bound

    return [
        (ServerSession.username, older(ServerSession.stopped_ms, before_ms)),
        (GroupMembership.username, older(GroupMembership.until_ms, before_ms)),
        *((t.username, older(t.day, day)) for t in _DAILY),
        *((t.username, older(t.month, month)) for t in _MONTHLY),
        (HomeUsage.username, older(HomeUsage.day, day)),
        (LedgerEntry.subject, older(LedgerEntry.at_ms, before_ms)),
        (LedgerEntry.by, older(LedgerEntry.at_ms, before_ms)),
        (BudgetNotice.subject, older(BudgetNotice.at_ms, before_ms)),
    ]


def months_before(now_ms: int, months: int) -> int:
    """The same moment `months` calendar months earlier (the day clipped to the month)."""
    import calendar

    moment = datetime.fromtimestamp(now_ms / 1000, UTC)
    index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return int(moment.replace(year=year, month=month + 1, day=day).timestamp() * 1000)


def forget(db: DB, username: str) -> str:
    """Replace `username` by a new pseudonym in every row; returns the pseudonym."""
    name = pseudonym()
    for column, _ in _renames(None):
        db.execute(update(column.table).where(column == username).values({column.name: name}))
    db.commit()
    return name


def expire(db: DB, before_ms: int) -> int:
    """Replace the names in rows older than `before_ms` (for the monthly rollups, in the
    months before its month) by one pseudonym a person, in one statement a table
    (through a temporary table of names); returns how many people."""
    renames = _renames(before_ms)
    people: set[str] = set()
    for column, old in renames:
        people |= set(db.scalars(select(column).where(old).distinct()))
    people = {p for p in people if not p.startswith(PREFIX)}
    if not people:
        return 0
    names = Table("twoi2c_forgetting", MetaData(), Column("name", String(255), primary_key=True),
                  Column("pseudonym", String(255)), prefixes=["TEMPORARY"])  # fmt: skip
    names.create(db.connection())
    try:
        db.execute(names.insert(), [{"name": p, "pseudonym": pseudonym()} for p in sorted(people)])
        for column, old in renames:
            replacement = select(names.c.pseudonym).where(names.c.name == column).scalar_subquery()
            db.execute(
                update(column.table)
                .where(old, column.in_(select(names.c.name)))
                .values({column.name: replacement})
                .execution_options(synchronize_session=False)
            )
        db.commit()
    finally:
        names.drop(db.connection())
        db.commit()
    return len(people)
