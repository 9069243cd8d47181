"""A statement's lines: what a period cost per person, per group and per resource (CPU,
memory, GPU, home storage), and the same for one group's people only (a group lead's
statement); and which months have anything to state.

Each line's figures are rounded to 9 places first and its total is the sum of the rounded
parts, so the lines and the totals add up as shown. Per person and per resource the
totals are the attributed cost; per group they are too, except under the "each" group
rule (a person in several groups is charged in full to each of them).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session as DB

from .cost_reports import cost
from .costs import CostBasis
from .db import in_one_snapshot
from .figures import NO_USAGE, CostRow
from .models import DAY_MS, BillLine, GroupMembership, ServerSession, SessionGroup, from_ms, to_ms
from .reports import usage
from .storage import storage_cost

# a line's money, by resource: (field, what a person reads)
RESOURCES = (("cpu_cost", "CPU"), ("ram_cost", "Memory"), ("gpu_cost", "GPU"), ("pv_cost", "Home storage"))
LINE_COSTS = ("cpu_cost", "ram_cost", "gpu_cost", "pv_cost", "total_cost")
LINE_HOURS = ("server_hours", "cpu_core_hours", "memory_gib_hours", "gpu_hours")
NO_GROUP_NAME = "(no group)"
OLDEST_MONTHS = 120  # the index lists at most ten years of months


def line(name: str, compute: CostRow | None, home: float) -> dict:
    """One line: a name's CPU, memory, GPU and home storage cost, and their total."""
    cpu, ram, gpu = (round(v, 9) for v in (compute[:3] if compute else (0.0, 0.0, 0.0)))
    pv = round(home, 9)
    return {"name": name, "cpu_cost": cpu, "ram_cost": ram, "gpu_cost": gpu, "pv_cost": pv,
            "total_cost": cpu + ram + gpu + pv}  # fmt: skip


def _largest_first(lines: list[dict]) -> list[dict]:
    return sorted(lines, key=lambda r: (-r["total_cost"], r["name"]))


def total(lines: list[dict], columns=LINE_COSTS) -> dict:
    """The lines added up column by column."""
    return {column: sum(r[column] for r in lines) for column in columns}


def by_resource(person_lines: list[dict]) -> list[dict]:
    """The cost of each resource: the person lines' columns added up."""
    return [{"name": label, "cost": sum(r[field] for r in person_lines)} for field, label in RESOURCES]


@in_one_snapshot
def statement_lines(db: DB, basis: CostBasis, start_ms: int, end_ms: int, now_ms: int) -> dict:
    """Everyone's lines over [start_ms, end_ms): per person, per group, per resource, with
    each kind's total."""
    users = cost(db, basis, start_ms, end_ms, "user", now_ms)
    user_homes = storage_cost(db, basis, start_ms, end_ms, "user")
    groups = cost(db, basis, start_ms, end_ms, "group", now_ms)
    group_homes = storage_cost(db, basis, start_ms, end_ms, "group")
    person = _largest_first([line(n, users.get(n), user_homes.get(n, 0.0)) for n in set(users) | set(user_homes)])
    group = _largest_first(
        [line(n or NO_GROUP_NAME, groups.get(n), group_homes.get(n, 0.0)) for n in set(groups) | set(group_homes)]
    )
    resource = by_resource(person)
    return {
        "person": person,
        "group": group,
        "resource": resource,
        "totals": {"person": total(person), "group": total(group), "resource": sum(r["cost"] for r in resource)},
    }


def group_people(db: DB, group: str, start_ms: int, end_ms: int) -> list[str]:
    """Who was in `group` at some time in [start_ms, end_ms): its members then, and the
    people whose sessions in the window counted for it."""
    members = select(GroupMembership.username).where(
        GroupMembership.group_name == group,
        GroupMembership.since_ms < end_ms,
        or_(GroupMembership.until_ms.is_(None), GroupMembership.until_ms > start_ms),
    )
    in_sessions = (
        select(ServerSession.username)
        .join(SessionGroup, SessionGroup.session_id == ServerSession.id)
        .where(
            SessionGroup.group_name == group,
            ServerSession.started_ms < end_ms,
            or_(ServerSession.stopped_ms.is_(None), ServerSession.stopped_ms > start_ms),
        )
    )
    return sorted(set(db.scalars(members)) | set(db.scalars(in_sessions)))


@in_one_snapshot
def group_lines(db: DB, basis: CostBasis, start_ms: int, end_ms: int, group: str, now_ms: int) -> dict:
    """One group's lines over [start_ms, end_ms): each of its people's hours and cost as
    counted for this group (their share of it by the group rule; their hours in full),
    per resource, and the totals (the group's line of everyone's statement)."""
    person = []
    for name in group_people(db, group, start_ms, end_ms):
        compute = cost(db, basis, start_ms, end_ms, "group", now_ms, username=name).get(group)
        home = storage_cost(db, basis, start_ms, end_ms, "group", name).get(group, 0.0)
        used = usage(db, start_ms, end_ms, "group", now_ms, username=name).get(group, NO_USAGE)
        row = line(name, compute, home)
        row.update({field: round(getattr(used, field), 6) for field in LINE_HOURS})
        if row["total_cost"] or row["server_hours"]:
            person.append(row)
    person = _largest_first(person)
    resource = by_resource(person)
    return {
        "group": group,
        "person": person,
        "resource": resource,
        "totals": {"person": total(person, LINE_COSTS + LINE_HOURS), "resource": sum(r["cost"] for r in resource)},
    }


def period(year: int, month: int, now_ms: int) -> dict:
    """The days a month's statement covers: the whole month once it has ended, else the
    month so far (to today)."""
    start = date(year, month, 1)
    following = date(year + month // 12, month % 12 + 1, 1)
    complete = now_ms >= to_ms(datetime(following.year, following.month, 1, tzinfo=UTC))
    last = date.fromordinal(following.toordinal() - 1) if complete else from_ms(now_ms).date()
    return {
        "period_start": start.isoformat(),
        "period_end": last.isoformat(),  # the last day included
        "complete": complete,
        "period_text": f"{start.day}–{last.day} {last:%B %Y}"
        if complete
        else f"{start:%B %Y} so far, to {last.day} {last:%B %Y}",
    }


def months_with_activity(db: DB, now_ms: int) -> list[str]:
    """The months (YYYY-MM) with a session or a bill line, newest first, to this month."""
    oldest_session = db.scalar(select(ServerSession.started_ms).order_by(ServerSession.started_ms).limit(1))
    oldest_bill = db.scalar(select(BillLine.day).order_by(BillLine.day).limit(1))
    starts = [ms for ms in (oldest_session, None if oldest_bill is None else oldest_bill * DAY_MS) if ms is not None]
    if not starts:
        return []
    today = from_ms(now_ms).date()
    year, month = today.year, today.month
    first = from_ms(min(starts)).date()
    found = []
    for _ in range(OLDEST_MONTHS):
        if (year, month) < (first.year, first.month):
            break
        a = to_ms(datetime(year, month, 1, tzinfo=UTC))
        b = to_ms(datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC))
        sessions = exists().where(
            ServerSession.started_ms < b, or_(ServerSession.stopped_ms.is_(None), ServerSession.stopped_ms > a)
        )
        bills = exists().where(BillLine.day >= a // DAY_MS, BillLine.day < b // DAY_MS)
        if db.scalar(select(or_(sessions, bills))):
            found.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return found
