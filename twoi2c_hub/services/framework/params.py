"""Typed query parameters: each parser takes the raw value (None when absent) and returns
a typed one, or raises `BadParameter`, a 400 whose message names the parameter."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

from tornado import web

from ...accounting import opencost, windows


class BadParameter(web.HTTPError):
    """A 400 for one query parameter (or body field): `parameter` names it."""

    def __init__(self, parameter: str, problem: str):
        message = printable(f"{parameter}: {problem}")  # a value quoted in it may hold a newline
        super().__init__(400, message)
        self.parameter = parameter
        self.message = message


def printable(text: str) -> str:
    """`text` on one line: each character that is not printable written as its escape."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def choice(name: str, value: str | None, allowed: Iterable[str], default: str | None = None) -> str | None:
    """One of `allowed`, or `default` when absent."""
    if value is None or value == "":
        return default
    allowed = list(allowed)
    if value not in allowed:
        raise BadParameter(name, f"'{value[:80]}' is not one of {', '.join(allowed)}")
    return value


def integer(name: str, value: str | None, default: int | None, low: int, high: int | None = None) -> int | None:
    """A whole number in [low, high], or `default` when absent."""
    if value is None or value == "":
        return default
    if not re.fullmatch(r"\d{1,12}", value):
        raise BadParameter(name, f"'{value[:80]}' is not a whole number")
    number = int(value)
    if number < low or (high is not None and number > high):
        raise BadParameter(name, f"must be between {low} and {high}" if high is not None else f"must be at least {low}")
    return number


def number(name: str, value: str | None, low: float, high: float) -> float | None:
    """A decimal number in [low, high], or None when absent."""
    if value is None or value == "":
        return None
    if not re.fullmatch(r"\d{1,12}(\.\d{1,6})?", value):
        raise BadParameter(name, f"'{value[:80]}' is not a number like 12.50")
    result = float(value)
    if not low <= result <= high:
        raise BadParameter(name, f"must be between {low:g} and {high:g}")
    return result


def window(name: str, value: str | None, now: datetime, default: str | None = None, **limits) -> windows.Window | None:
    """A window in OpenCost's grammar (see `accounting.windows`)."""
    value = value or default
    if value is None:
        return None
    try:
        return windows.parse_window(value, now, **limits)
    except ValueError as e:
        raise BadParameter(name, str(e)) from None


# the days a page, a report or a ledger entry may name: those of `accounting.windows`, so no
# date arithmetic on a day given (the day after the last, a window's milliseconds) overflows
FIRST_DAY = windows.EARLIEST.date()
LAST_DAY = windows.LATEST.date() - timedelta(days=1)


def day(name: str, value: str | None) -> date | None:
    """A calendar date, YYYY-MM-DD, from FIRST_DAY to LAST_DAY."""
    if value is None or value == "":
        return None
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError
        found = date.fromisoformat(value)
    except ValueError:
        raise BadParameter(name, f"'{value[:80]}' is not a date like 2026-11-01") from None
    if not FIRST_DAY <= found <= LAST_DAY:
        raise BadParameter(name, f"{value} is outside the dates a report may ask for ({FIRST_DAY} to {LAST_DAY})")
    return found


def period(start: str | None, end: str | None, today: date, default_days: int = 30) -> tuple[windows.Window, str, str]:
    """The days a page asks for (`start`, `end`: dates, both included), as a window and as
    the dates to show in its form; the last `default_days` days to `today` when neither is
    given. Both days are checked before any arithmetic on them."""
    start_day, end_day = day("start", start), day("end", end)
    if start_day is None and end_day is None:
        end_day = today
        start_day = end_day - timedelta(days=default_days - 1)
    elif start_day is None or end_day is None:
        raise BadParameter("start" if start_day is None else "end", "give both dates, or neither")
    try:
        window = windows.checked(
            datetime.combine(start_day, time(), UTC),
            datetime.combine(end_day + timedelta(days=1), time(), UTC),
        )
    except ValueError as e:
        raise BadParameter("start/end", str(e)) from None
    return window, start_day.isoformat(), end_day.isoformat()


def text(name: str, value: str | None, max_length: int = 255) -> str | None:
    """Free text (a username, a profile slug), bounded in length."""
    if value is not None and len(value) > max_length:
        raise BadParameter(name, f"must be at most {max_length} characters")
    return value


def check_steps(window: windows.Window, step: str | None) -> None:
    """At most `opencost.MAX_STEPS` steps of `step` in `window`."""
    try:
        opencost.check_steps(*window, step)
    except ValueError as e:
        raise BadParameter("step", str(e)) from None
