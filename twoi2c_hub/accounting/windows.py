"""Time windows in OpenCost's grammar, in UTC, as epoch milliseconds.

The forms and their alignment are OpenCost's (`core/pkg/opencost/window.go`), so a
window means here what it means to people and tools that know OpenCost:

- `today`, `yesterday`: that UTC day, midnight to midnight;
- `week` (Sunday 00:00 to now), `lastweek` (the Sunday-to-Sunday week before),
  `month` (the 1st 00:00 to now), `lastmonth` (the whole calendar month before);
- `30m`, `12h`, `7d`: the current minute, hour or day and the ones before it, aligned
  to their boundaries (`7d` is today in full and the 6 days before: it ends at the next
  midnight); `2w`: the days since this time two weeks ago, ending at the next midnight;
- `24h offset 14h`: 24 hours ending 14 hours ago (not aligned);
- `START,END`: RFC 3339 times (`2026-11-01T00:00:00Z`) or Unix seconds (`1583712000,
  1583884800`, also written `1583712000-1583884800`).

Every malformed or out-of-range window is a `ValueError` whose message says what is
wrong; nothing here knows about HTTP.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from .models import to_ms

# the longest window any report is asked for
MAX_WINDOW_DAYS = 3660
MAX_WINDOW_TEXT = 100  # characters: the longest window (two RFC 3339 times with microseconds) has 65

_UNITS = {
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
_DURATION = re.compile(r"(\d{1,7})([mhdw])")
_DURATION_OFFSET = re.compile(r"(\d{1,7})([mhdw]) offset (\d{1,7})([mhdw])")
_UNIX_PAIR = re.compile(r"(\d{1,12})[,-](\d{1,12})")
# the earliest and latest moments a window may touch (year 1 and 9999 overflow datetime)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)

EXAMPLES = "7d, 24h, today, week, month, lastmonth, or 2026-11-01T00:00:00Z,2026-11-08T00:00:00Z"


class Window(NamedTuple):
    """[start_ms, end_ms) in UTC epoch milliseconds."""

    start_ms: int
    end_ms: int


def _midnight(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _truncate(moment: datetime, unit: timedelta) -> datetime:
    seconds = unit.total_seconds()
    return datetime.fromtimestamp(moment.timestamp() // seconds * seconds, tz=UTC)


def _named(value: str, now: datetime) -> tuple[datetime, datetime] | None:
    today = _midnight(now)
    # Python's weekday() is 0 on Monday; OpenCost's weeks start on Sunday
    sunday = today - timedelta(days=(today.weekday() + 1) % 7)
    first_of_month = today.replace(day=1)
    named = {
        "today": lambda: (today, today + timedelta(days=1)),
        "yesterday": lambda: (today - timedelta(days=1), today),
        "week": lambda: (sunday, now),
        "lastweek": lambda: (sunday - timedelta(days=7), sunday),
        "month": lambda: (first_of_month, now),
        "lastmonth": lambda: ((first_of_month - timedelta(days=1)).replace(day=1), first_of_month),
    }
    make = named.get(value)
    return make() if make else None


def _duration(value: str, now: datetime) -> tuple[datetime, datetime] | None:
    if match := _DURATION.fullmatch(value):
        count, unit = int(match.group(1)), _UNITS[match.group(2)]
        if match.group(2) == "w":
            end = _midnight(now) + timedelta(days=1)
            start = _midnight(now - count * unit) + timedelta(days=1)
        else:
            end = _truncate(now, unit) + unit
            start = end - count * unit
        return start, end
    if match := _DURATION_OFFSET.fullmatch(value):
        end = now - int(match.group(3)) * _UNITS[match.group(4)]
        return end - int(match.group(1)) * _UNITS[match.group(2)], end
    return None


def parse_moment(value: str) -> datetime:
    """An RFC 3339 time with its zone (`2026-11-01T00:00:00Z`) or Unix seconds, in UTC."""
    value = value.strip()
    if re.fullmatch(r"\d{1,12}(\.\d{1,9})?", value):
        try:
            return datetime.fromtimestamp(float(value), tz=UTC)
        except (ValueError, OSError):
            raise OverflowError(value) from None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"'{value}' has no time zone; end it with Z for UTC")
    return moment.astimezone(UTC)


def _pair(value: str) -> tuple[datetime, datetime] | None:
    if match := _UNIX_PAIR.fullmatch(value):
        return parse_moment(match.group(1)), parse_moment(match.group(2))
    if "," not in value:
        return None
    parts = value.split(",")
    if len(parts) != 2:
        raise ValueError(f"'{value}' has more than one comma")
    try:
        return parse_moment(parts[0]), parse_moment(parts[1])
    except ValueError:
        raise ValueError(f"'{value}' is not START,END in RFC 3339 (2026-11-01T00:00:00Z) or Unix seconds") from None


def parse_window(value: str, now: datetime, *, max_days: int = MAX_WINDOW_DAYS) -> Window:
    """The window `value` names at `now` (an aware datetime); ValueError if it names none."""
    value = (value or "").strip()
    if len(value) > MAX_WINDOW_TEXT:
        raise ValueError(f"'{value[:40]}…' is longer than any window ({MAX_WINDOW_TEXT} characters)")
    now = now.astimezone(UTC)
    try:
        bounds = _named(value, now) or _duration(value, now) or _pair(value)
    except OverflowError:
        raise ValueError(f"'{value}' reaches outside the years {EARLIEST.year}-{LATEST.year}") from None
    if bounds is None:
        raise ValueError(f"'{value}' is not a window; use e.g. {EXAMPLES}")
    return checked(*bounds, max_days=max_days)


def checked(start: datetime, end: datetime, *, max_days: int = MAX_WINDOW_DAYS) -> Window:
    """The window [start, end) if it is one a report may be asked for; else ValueError."""
    if start < EARLIEST or end > LATEST:
        raise ValueError(f"a window must lie between the years {EARLIEST.year} and {LATEST.year}")
    if end <= start:
        raise ValueError("its end must be after its start")
    if end - start > timedelta(days=max_days):
        raise ValueError(f"at most {max_days} days")
    return Window(to_ms(start), to_ms(end))
