"""OpenCost's window grammar, with OpenCost's own documented examples
(`core/pkg/opencost/window_test.go`, TestParseWindowUTC, and the /allocation API docs)."""

from datetime import UTC, datetime, timedelta

import pytest

from twoi2c_hub.accounting.windows import MAX_WINDOW_DAYS, parse_window

# a Thursday afternoon (2026-11-26 was a Thursday)
NOW = datetime(2026, 11, 26, 14, 37, 48, 123000, tzinfo=UTC)


def utc(*parts) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def bounds(value, now=NOW):
    window = parse_window(value, now)
    return (datetime.fromtimestamp(window.start_ms / 1000, UTC), datetime.fromtimestamp(window.end_ms / 1000, UTC))


@pytest.mark.parametrize(
    "value, start, end",
    [
        ("today", utc(2026, 11, 26), utc(2026, 11, 27)),
        ("yesterday", utc(2026, 11, 25), utc(2026, 11, 26)),
        # OpenCost's weeks start on Sunday
        ("week", utc(2026, 11, 22), NOW),
        ("lastweek", utc(2026, 11, 15), utc(2026, 11, 22)),
        ("month", utc(2026, 11, 1), NOW),
        ("lastmonth", utc(2026, 10, 1), utc(2026, 11, 1)),
        # durations are aligned to their unit: the current one in full and those before it
        ("30m", utc(2026, 11, 26, 14, 8), utc(2026, 11, 26, 14, 38)),
        ("12h", utc(2026, 11, 26, 3), utc(2026, 11, 26, 15)),
        ("24h", utc(2026, 11, 25, 15), utc(2026, 11, 26, 15)),
        ("2d", utc(2026, 11, 25), utc(2026, 11, 27)),
        ("7d", utc(2026, 11, 20), utc(2026, 11, 27)),
        ("1w", utc(2026, 11, 20), utc(2026, 11, 27)),
        # not aligned: 24 hours ending 14 hours ago
        ("24h offset 14h", NOW - timedelta(hours=38), NOW - timedelta(hours=14)),
        # OpenCost's test pairs
        ("2020-04-08T00:00:00Z,2020-04-12T00:00:00Z", utc(2020, 4, 8), utc(2020, 4, 12)),
        ("1583712000,1583884800", utc(2020, 3, 9), utc(2020, 3, 11)),
        ("1583712000-1583884800", utc(2020, 3, 9), utc(2020, 3, 11)),
        # the API documentation's examples
        ("2021-01-02T15:04:05Z,2021-02-02T15:04:05Z", utc(2021, 1, 2, 15, 4, 5), utc(2021, 2, 2, 15, 4, 5)),
        ("1578002645,1580681045", utc(2020, 1, 2, 22, 4, 5), utc(2020, 2, 2, 22, 4, 5)),
    ],
)
def test_opencost_windows(value, start, end):
    assert bounds(value) == (start, end)


def test_opencost_properties_hold_at_any_time_of_day():
    """TestParseWindowUTC's checks, at every hour of a month."""
    for hour in range(0, 24 * 31, 5):
        now = utc(2026, 1, 1) + timedelta(hours=hour, minutes=17)
        today, yesterday = bounds("today", now), bounds("yesterday", now)
        assert today[1] - today[0] == timedelta(hours=24) and today[0] <= now < today[1]
        assert yesterday[1] - yesterday[0] == timedelta(hours=24) and yesterday[1] <= now
        week = bounds("week", now)
        assert week[1] == now and week[1] - week[0] >= timedelta(days=(now.weekday() + 1) % 7)
        lastmonth = bounds("lastmonth", now)
        assert lastmonth[1] == now.replace(day=1, hour=0, minute=0)
        assert timedelta(days=28) <= lastmonth[1] - lastmonth[0] <= timedelta(days=31)
        day = bounds("24h", now)
        assert day[1] - day[0] == timedelta(hours=24) and day[0] <= now - timedelta(hours=12) < day[1]
        assert not day[0] <= now - timedelta(hours=36) < day[1]
        two_days = bounds("2d", now)
        assert two_days[1] - two_days[0] == timedelta(hours=48)
        assert two_days[0] <= now - timedelta(hours=24) < two_days[1]


@pytest.mark.parametrize(
    "value, message",
    [
        ("", "'' is not a window"),
        ("'; DROP TABLE sessions;--", "''; DROP TABLE sessions;--' is not a window"),
        ("7x", "'7x' is not a window"),
        ("2026-01-02T00:00:00Z,2026-01-01T00:00:00Z", "its end must be after its start"),
        ("2026-01-01T00:00:00,2026-01-02T00:00:00Z", "'2026-01-01T00:00:00,2026-01-02T00:00:00Z' is not START,END"),
        ("a,b,c", "'a,b,c' has more than one comma"),
        ("9999999d", "reaches outside the years"),
        ("1w offset 9999999w", "reaches outside the years"),
        ("2015-11-28T00:00:00Z,2026-11-26T00:00:00Z", f"at most {MAX_WINDOW_DAYS} days"),
        ("0001-01-01T00:00:00Z,0001-01-02T00:00:00Z", "a window must lie between the years"),
        ("9998-01-01T00:00:00Z,9999-12-31T00:00:00Z", "a window must lie between the years"),
        ("99999999999,999999999999", "reaches outside the years"),
    ],
)
def test_malformed_windows_say_what_is_wrong(value, message):
    with pytest.raises(ValueError) as refused:
        parse_window(value, NOW)
    assert message in str(refused.value)
