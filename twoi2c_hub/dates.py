"""Dates and numbers a person reads on a page, in their browser's own locale.

The server writes each date as `<time datetime="2027-01-01">1 Jan 2027</time>` (a month as
`<time datetime="2026-12">December 2026</time>`): a readable fallback, and the exact day
for the one script every page carries (share/templates/local_dates.js, from page.html),
which writes it as the reader's locale does ("1. Jan. 2027" in German). Text for machines
and mail -- CSV, the API's JSON, alerts, log lines -- keeps its ISO dates; a page that shows
such text (a budget's "resets on 2027-01-01") marks each date in it with `with_dates`.

A number (money, hours, a percentage, GiB) is written the same way, with `number`:
`<data class="twoi2c-number" value="1234.56">1,234.56</data>`, the value rounded to the
decimals shown, which the same script writes with Intl.NumberFormat and as many decimals
("1.234,56" in German). A currency code or a unit stays text beside it. Text with both
(a budget's line in words, made for alerts) is marked with `with_dates_and_numbers`.

The filters (`day`, `month`, `with_dates`, `number`, `with_dates_and_numbers`) come with
`LocalDates`, a Jinja extension: the hub's environment takes it from
`JupyterHub.jinja_environment_options`, the services' and the spawn form's are made with it.
"""

from __future__ import annotations

import math
import re
from datetime import date
from typing import Any

import jinja2.ext
from markupsafe import Markup, escape

# an ISO day standing alone: not part of a longer number, of a moment (2026-12-01T10:00),
# nor of a name (an image tag, quay.io/jupyter/scipy-notebook:2025-01-06, a path, a version)
_ISO_DAY = re.compile(r"(?<![\w:/.@-])(\d{4}-\d{2}-\d{2})(?![\w:/-])")
_ISO_MONTH = re.compile(r"\d{4}-\d{2}")
# a figure in words written by Python ("1,234.56 USD", "2.00 USD", "6.3 GiB", "1,500 GPU-hours"):
# with decimals or group commas, and followed by a currency code or a unit, so a year or the
# digits of a name ("cohort 2026", "gpu-2", "'Python 3.11'") are never taken for one
_FIGURE = re.compile(
    r"(?<![\w.,-])(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+)(?![\w-]|[.,]\d)"
    r"(?=\s?(?:[A-Z]{3}\b|GiB|CPU|GPU|server-hours|memory GiB|hours?\b|%))"
)


def _as_day(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def day(value: Any) -> Markup:
    """A day (a `date` or 'YYYY-MM-DD') as a `<time>`; anything else escaped as it is."""
    when = _as_day(value)
    if when is None:
        return escape(value or "")
    return Markup('<time class="twoi2c-date" datetime="{}">{}</time>').format(
        when.isoformat(), f"{when.day} {when:%b %Y}"
    )


def month(value: Any) -> Markup:
    """A month ('YYYY-MM') as a `<time>`; anything else escaped as it is."""
    text = str(value or "")
    if not _ISO_MONTH.fullmatch(text) or not 1 <= int(text[5:]) <= 12:
        return escape(text)
    return Markup('<time class="twoi2c-month" datetime="{}">{}</time>').format(
        text, f"{date(int(text[:4]), int(text[5:]), 1):%B %Y}"
    )


def with_dates(text: Any) -> Markup:
    """Text with each ISO day in it as a `<time>`; the rest escaped."""
    parts = _ISO_DAY.split(str(text or ""))
    # split with one group: text, day, text, day, ..., text
    return Markup("").join(day(p) if i % 2 and _as_day(p) else escape(p) for i, p in enumerate(parts))


def number(value: Any, decimals: int | None = 2) -> Markup:
    """A number as a `<data>` whose value is rounded to `decimals` (None: as few as it
    needs, like 0.5 or 2), written here as English does ("1,234.56"); not a number: escaped."""
    try:
        figure = float(value)
    except (TypeError, ValueError):
        figure = math.nan
    if isinstance(value, bool) or not math.isfinite(figure):
        return escape("" if value is None else value)
    if decimals is None:
        machine = f"{figure:.6f}".rstrip("0").rstrip(".")
        decimals = len(machine.partition(".")[2])
    else:
        machine = f"{figure:.{decimals}f}"
    if float(machine) == 0:
        machine = machine.lstrip("-")  # no "-0.00"
    return Markup('<data class="twoi2c-number" value="{}">{}</data>').format(machine, f"{float(machine):,.{decimals}f}")


def with_dates_and_numbers(text: Any) -> Markup:
    """Text with each ISO day in it as a `<time>` and each figure of an amount (decimals or
    group commas, then a currency or a unit) as a `<data>`, its decimals kept; the rest
    escaped."""
    parts = _FIGURE.split(str(text or ""))
    # split with one group: text, figure, text, figure, ..., text
    return Markup("").join(
        number(p.replace(",", ""), len(p.partition(".")[2])) if i % 2 else with_dates(p) for i, p in enumerate(parts)
    )


class LocalDates(jinja2.ext.Extension):
    """The filters `day`, `month`, `with_dates`, `number` and `with_dates_and_numbers` in a
    Jinja environment."""

    def __init__(self, environment: jinja2.Environment):
        super().__init__(environment)
        environment.filters.update(
            day=day, month=month, with_dates=with_dates, number=number, with_dates_and_numbers=with_dates_and_numbers
        )


# the extension as Jinja's `extensions` option names it
EXTENSION = f"{__name__}.{LocalDates.__name__}"
