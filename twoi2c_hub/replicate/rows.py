"""What each row of an archive may hold: the values of its table's columns, and the
hub's people and groups, checked before they are written (checks.py has the limits).

Each value must be of its column's type and range whatever the database: SQLite would
store a string in an integer column, and PostgreSQL refuse a NUL character, in the
middle of an import. A refusal names the member, the line, the column and what it must be.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from operator import call
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, Integer, String

from ..accounting.models import DAY_MS, to_ms
from ..accounting.windows import EARLIEST, LATEST
from .archive import ArchiveError
from .checks import MAX_LINE_BYTES, MAX_NAME_CHARS, bounded, parsed, shown
from .hub_users import GROUPS, USERS

LAST_MS = to_ms(LATEST) - 1  # 8999-12-31T23:59:59.999Z, as the services bound dates
_FIRST_MONTH, _LAST_MONTH = EARLIEST.year * 12, LATEST.year * 12 - 1
# the integer columns that hold times, by name: (lowest, highest, in words)
_TIMES = {
    "ms": (0, LAST_MS, f"milliseconds from 1970-01-01 (0) to 8999-12-31 ({LAST_MS})"),
    "day": (0, LAST_MS // DAY_MS, f"a day from 1970-01-01 (0) to 8999-12-31 ({LAST_MS // DAY_MS})"),
    "month": (_FIRST_MONTH, _LAST_MONTH, f"a month from 1970-01 ({_FIRST_MONTH}) to 8999-12 ({_LAST_MONTH})"),
}
_FLOAT_MAX = sys.float_info.max


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate ("\ud800")
        return False
    return True


def _value_check(column) -> tuple[Callable[[Any], bool], str]:
    """(whether a value fits `column`, what it must be in words), from its type."""
    kind, name = column.type, column.name
    if isinstance(kind, Boolean):
        ok, expected = (lambda v: v is True or v is False), "true or false"
    elif isinstance(kind, Integer):
        time = "ms" if name.endswith("_ms") else name if name in ("day", "month") else None
        if time:
            low, high, expected = _TIMES[time]
        else:
            high = 2**63 - 1 if isinstance(kind, BigInteger) else 2**31 - 1
            low, expected = -high - 1, f"a whole number from {-high - 1} to {high}"
        ok = lambda v: type(v) is int and low <= v <= high  # noqa: E731
    elif isinstance(kind, Float):  # NaN and infinities compare false
        ok, expected = (lambda v: type(v) in (int, float) and -_FLOAT_MAX <= v <= _FLOAT_MAX), "a finite number"
    elif isinstance(kind, String):
        length = kind.length or MAX_LINE_BYTES
        ok = lambda v: type(v) is str and len(v) <= length and "\0" not in v and (v.isascii() or _utf8(v))  # noqa: E731
        expected = f"text of at most {length} characters" if kind.length else "text"
        expected += " (UTF-8, no NUL)"
    else:
        ok, expected = (lambda v: type(v) in (str, int, float, bool)), "a JSON string, number, true or false"
    if column.nullable:
        return (lambda v: v is None or ok(v)), f"{expected} or null"
    return ok, expected


def row_check(table, columns: list[str], member: str) -> Callable[[list, int], None]:
    """check(rows, first_line): each row, line by line from `first_line` of `member`, an
    array of `columns`, each value of its column's type and range."""
    fits, expected = zip(*(_value_check(table.columns[column]) for column in columns), strict=True)
    width = len(columns)

    def check(rows: list, first_line: int) -> None:
        for number, row in enumerate(rows, first_line):
            if type(row) is not list:
                raise ArchiveError(f"{member} line {number}: not an array of the {width} columns, but {shown(row)}")
            if len(row) != width:
                raise ArchiveError(f"{member} line {number}: {len(row)} values, not the {width} columns listed")
            if not all(map(call, fits, row)):  # the columns' checks in one C loop: the common case
                i = next(i for i, (ok, value) in enumerate(zip(fits, row)) if not ok(value))
                raise ArchiveError(f"{member} line {number}: {columns[i]} must be {expected[i]}, not {shown(row[i])}")

    return check


# --- the hub's people and groups ----------------------------------------------------------


def _objects(data: bytes, member: str) -> Iterator[tuple[str, dict]]:
    """(where, object) for each line of a JSON Lines member read whole."""
    lines = data.split(b"\n")
    if lines[-1]:
        raise ArchiveError(f"{member}: its last line is cut short")
    for number, line in enumerate(lines[:-1], 1):
        where = f"{member} line {number}"
        bounded(where, len(line), MAX_LINE_BYTES, "a line")
        row = parsed(line, where)
        if not isinstance(row, dict):
            raise ArchiveError(f"{where}: not a JSON object")
        yield where, row


def _field(row: dict, key: str, where: str, expected: str, ok: Callable[[Any], Any]) -> Any:
    value = row.get(key)
    if not ok(value):
        raise ArchiveError(f"{where}: {key} must be {expected}, not {shown(value) if key in row else 'missing'}")
    return value


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_NAME_CHARS and value.isprintable()


def _is_moment(value: Any) -> bool:
    try:
        return value is None or isinstance(value, str) and len(value) <= 40 and bool(datetime.fromisoformat(value))
    except ValueError:
        return False


_NAME = f"1 to {MAX_NAME_CHARS} printable characters"


def hub_rows(members: dict[str, bytes]) -> None:
    """The hub's groups and people: each line an object with the fields `hub_users.write`
    reads, each name once, and each group a person is in one of the archive's."""
    groups: set[str] = set()
    for where, row in _objects(members.get(GROUPS, b""), GROUPS):
        name = _field(row, "name", where, _NAME, _is_name)
        _field(row, "properties", where, "an object", lambda v: isinstance(v, dict))
        if name in groups:
            raise ArchiveError(f"{where}: {shown(name)} twice")
        groups.add(name)
    people: set[str] = set()
    for where, row in _objects(members.get(USERS, b""), USERS):
        name = _field(row, "name", where, _NAME, _is_name)
        _field(row, "admin", where, "true or false", lambda v: isinstance(v, bool))
        _field(row, "created", where, "a date and time (ISO 8601) or null", _is_moment)
        _field(row, "last_activity", where, "a date and time (ISO 8601) or null", _is_moment)
        listed = f"a list of groups in {GROUPS}"
        _field(
            row,
            "groups",
            where,
            listed,
            lambda v: isinstance(v, list) and all(isinstance(g, str) and g in groups for g in v),
        )
        if name in people:
            raise ArchiveError(f"{where}: {shown(name)} twice")
        people.add(name)
