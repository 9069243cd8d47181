"""One way to read any figure over a window: whole UTC days from the rollups, the rest from
the sessions.

Usage, cost and one person's spending all read a window [start, end) alike (`split`):
the UTC days wholly inside it from the daily rollups (or the monthly ones, for whole
calendar months of everyone by user), and from the sessions table, clipped to the
window, the partial days at its edges and, within the whole days, the sessions the
rollups do not hold yet (running ones, and ones closed too recently). `add_up` has a
`Reading` (usage's, cost's) add up each part; `PersonHistory` walks them in memory.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

from sqlalchemy import ColumnElement, Select, and_, case, false, func, literal, select
from sqlalchemy.orm import Session as DB

from .figures import Totals
from .models import DAY_MS, ServerSession, whole_months


class Piece(NamedTuple):
    """[start_ms, end_ms) read from the sessions; `unrolled_only`: only the sessions not
    yet in the rollups (the span of the whole days)."""

    start_ms: int
    end_ms: int
    unrolled_only: bool


class Split(NamedTuple):
    days: range  # the whole UTC days inside the window, read from the rollups
    pieces: tuple[Piece, ...]  # in order: the start's partial day, the whole days, the end's


def split(start_ms: int, end_ms: int) -> Split:
    """[start_ms, end_ms) as the rollups and the sessions each give it."""
    first_day, end_day = -(-start_ms // DAY_MS), end_ms // DAY_MS
    if first_day >= end_day:
        return Split(range(0), (Piece(start_ms, end_ms, False),))
    pieces = [Piece(first_day * DAY_MS, end_day * DAY_MS, True)]
    if start_ms < first_day * DAY_MS:
        pieces.insert(0, Piece(start_ms, first_day * DAY_MS, False))
    if end_day * DAY_MS < end_ms:
        pieces.append(Piece(end_day * DAY_MS, end_ms, False))
    return Split(range(first_day, end_day), tuple(pieces))


@dataclass(frozen=True)
class Bounds:
    """What bounds the session queries of a report: the longest closed session, and the
    start of the oldest session not yet in the rollups (None: all are). Read once."""

    max_duration_ms: int
    unrolled_since_ms: int | None

    @classmethod
    def of(cls, db: DB, rolled_up: ColumnElement) -> Bounds:
        """`rolled_up`: the sessions' flag for the rollups read (usage's or cost's)."""
        return cls(
            db.scalar(select(func.max(ServerSession.duration_ms))) or 0,
            db.scalar(select(func.min(ServerSession.started_ms)).where(rolled_up == false())),
        )

    def unrolled_in(self, piece: Piece) -> bool:
        return self.unrolled_since_ms is not None and self.unrolled_since_ms < piece.end_ms


@dataclass(frozen=True)
class NameFilter:
    """Only these names (`keep`), or all but these; `collapse_to`: one row for all that pass."""

    names: frozenset[str]
    keep: bool = True
    collapse_to: str | None = None

    def where(self, key: ColumnElement) -> ColumnElement:
        return key.in_(self.names) if self.keep else ~key.in_(self.names)


def grouped(query: Select, key: ColumnElement, names: NameFilter | None) -> Select:
    """`query` grouped by `key`, or collapsed to one row as `names` says."""
    if names is None:
        return query.group_by(key)
    query = query.where(names.where(key))
    return query if names.collapse_to is not None else query.group_by(key)


def key_select(key: ColumnElement, names: NameFilter | None) -> ColumnElement:
    """What a query selects as the name: `key`, or the one name `names` collapses to."""
    return literal(names.collapse_to) if names is not None and names.collapse_to is not None else key


@dataclass
class Reading:
    """One report's figures of one kind (usage, cost) as they are added up: `add_up` has
    it add the rollups of the whole days (`rolled`) and the sessions of each piece (`raw`)."""

    row: ClassVar[type]  # the typed row of figures added up (UsageRow, CostRow)
    rolled_up: ClassVar[str]  # the sessions' flag for the rollups it reads

    db: DB
    aggregate: str
    now_ms: int
    username: str | None = None  # only this person's figures
    bounds: Bounds | None = None  # read when not given
    totals: Totals = field(init=False)

    def __post_init__(self):
        size = len(self.row._fields)
        self.totals = defaultdict(lambda: [0.0] * size)
        self.bounds = self.bounds or Bounds.of(self.db, getattr(ServerSession, self.rolled_up))

    def rolled(self, days: range) -> None:
        """Add the rollups of `days`."""
        raise NotImplementedError

    def raw(self, piece: Piece) -> None:
        """Add the sessions overlapping `piece`, clipped to it."""
        raise NotImplementedError

    def add_rollups(self, daily, monthly, days: range, figures, names: NameFilter | None = None) -> None:
        """Add the `figures` of the `daily` rollup (table, key column) over `days`; everyone
        by user reads whole calendar months from the `monthly` one instead."""
        by_month = self.aggregate == "user" and self.username is None
        for table, key, condition in segments(daily, monthly if by_month else None, days):
            query = select(key_select(key, names), *(func.sum(getattr(table, f)) for f in figures)).where(condition)
            if self.username is not None:
                query = query.where(table.username == self.username)
            add_rows(self.totals, self.db.execute(grouped(query, key, names)))


def add_up(reading: Reading, start_ms: int, end_ms: int) -> dict:
    """name -> its figures over [start_ms, end_ms) (a `reading.row`): whole days from the
    rollups, the rest from the sessions (within the whole days only if some are not
    rolled up)."""
    window = split(start_ms, end_ms)
    if window.days:
        reading.rolled(window.days)
    for piece in window.pieces:
        if not piece.unrolled_only or reading.bounds.unrolled_in(piece):
            reading.raw(piece)
    make = reading.row._make
    return {name: make(values) for name, values in reading.totals.items()}


class Segment(NamedTuple):
    """Rows of one rollup table to add up: grouped by `key`, where `condition` holds."""

    table: type
    key: ColumnElement
    condition: ColumnElement


def segments(daily: tuple[type, ColumnElement], monthly: tuple[type, ColumnElement] | None, days: range):
    """The rollup rows of `days`, each a (table, key column): with a `monthly` rollup, whole
    calendar months from it and the days left over from the `daily` one; else all daily."""
    table, key = daily
    if monthly is None:
        return [Segment(table, key, and_(table.day >= days.start, table.day < days.stop))]
    months, leftovers = whole_months(days.start, days.stop)
    found = [Segment(table, key, and_(table.day >= a, table.day < b)) for a, b in leftovers]
    if months:
        table, key = monthly
        found.append(Segment(table, key, and_(table.month >= months.start, table.month < months.stop)))
    return found


def add_rows(totals: Totals, rows) -> None:
    """Add (name, *figures) rows of a query to `totals`; a row of NULLs (an aggregate over
    no rows: every figure is a sum, NULL only then) adds nothing."""
    for name, *values in rows:
        if values[0] is None:
            continue
        row = totals[name]
        for i, value in enumerate(values):
            row[i] += float(value or 0)


def least(a: ColumnElement, b: ColumnElement | int) -> ColumnElement:
    return case((a < b, a), else_=b)


def greatest(a: ColumnElement, b: ColumnElement) -> ColumnElement:
    return case((a > b, a), else_=b)
