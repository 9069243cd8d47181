"""Cloud bills imported from CSV, and a month's statement.

Two exports are read, by their column names:

- AWS Cost and Usage Reports (CUR): `lineItem/UsageStartDate`, `lineItem/UnblendedCost`,
  `lineItem/CurrencyCode`, and `lineItem/ProductCode` (the service);
- the Google Cloud billing export (BigQuery, saved as CSV): `usage_start_time`, `cost`,
  `currency`, and `service.description` (the service); `credits` (a JSON list of
  `{"amount": ...}`, negative) are added when present.

A file is read as a stream and summed per UTC day and service; importing a period again
replaces the days it covers. The currency must be the prices' currency (nothing is
converted). A file is refused whole at its first problem, with its line: not UTF-8, a row
or the file past the limits below, a cost that is not a finite amount, a date outside the
years 1970-8999, a missing or repeated column, no line with a cost. Credits and refunds
are negative amounts (AWS writes them as lines, GCP in `credits`).

The statement puts the bill beside what the sessions were charged: the rest, bill minus
attributed, is idle or unattributed cost (nodes nobody's server used, disks, network, the
hub itself), so the parts add up to the bill.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session as DB

from .cost_reports import cost
from .costs import CostBasis
from .db import in_one_snapshot
from .figures import NO_COST
from .models import DAY_MS, BillLine, to_ms
from .statement_lines import group_lines, period, statement_lines
from .storage import storage_cost
from .windows import EARLIEST, LATEST

FORMATS = {
    "aws": ("lineItem/UsageStartDate", "lineItem/UnblendedCost", "lineItem/CurrencyCode", "lineItem/ProductCode"),
    "gcp": ("usage_start_time", "cost", "currency", "service.description"),
}
# what a file may be: a month of a hub's CUR is a few hundred MB at most (AWS splits a
# larger report into parts), and its rows a few kB (the resource tags)
MAX_FILE_BYTES = 4 * 2**30
MAX_ROW_BYTES = 2**20  # one CSV row: a line, or several inside quotes
MAX_BILL_LINES = 100_000  # day-and-service lines in one file: a year of 270 services a day
MAX_AMOUNT = 1e12  # a cost or a credit, either way (credits and refunds are negative)
SERVICE_CHARS = 255  # the stored service name


class BillError(ValueError):
    """A bill that cannot be imported; the message says which line and why."""


def read_bill(file: IO[bytes], currency: str) -> tuple[str, dict[tuple[int, str], float]]:
    """(source, {(day, service): cost}) of a CSV export, streamed; the first thing wrong
    is a BillError naming its line, before anything is stored."""
    records = _records(file)
    number, header = next(records, (1, None))
    if header is None:
        raise BillError("line 1: the file is empty")
    source = next((name for name, columns in FORMATS.items() if set(columns) <= set(header)), None)
    if source is None:
        wanted = " or ".join(", ".join(columns) for columns in FORMATS.values())
        raise BillError(f"line 1: not an AWS CUR or GCP billing export: it needs the columns {wanted}")
    for column in (*FORMATS[source], "credits"):
        if header.count(column) > 1:
            raise BillError(f"line 1: the column {column!r} appears twice")
    when, amount, unit, service = FORMATS[source]
    totals: dict[tuple[int, str], float] = defaultdict(float)
    for number, values in records:
        row = dict(zip(header, values))
        if not row.get(amount, "").strip():
            continue  # AWS writes lines without a cost (e.g. some tax and discount headers)
        if row.get(unit) != currency:
            raise BillError(f"line {number}: the currency is {_shown(row.get(unit))}, the prices' is {currency!r}")
        value = _amount(number, "cost", row[amount])
        if source == "gcp" and row.get("credits", "").strip():
            value += sum(_amount(number, "credit", credit) for credit in _credits(number, row["credits"]))
        totals[(_day(number, row.get(when, "")), (row.get(service) or "(no service)")[:SERVICE_CHARS])] += value
        if len(totals) > MAX_BILL_LINES:
            raise BillError(f"line {number}: more than {MAX_BILL_LINES:,} day-and-service lines in one file")
    if not totals:
        raise BillError(f"line {number}: no line with a cost: nothing to import")
    return source, totals


def _records(file: IO[bytes]) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each non-empty CSV row of a file read as bytes."""
    lines = _Lines(file)
    reader = csv.reader(lines)
    while True:
        lines.next_row()
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise BillError(f"line {lines.number}: {e}") from None
        if values:
            yield lines.number, values


class _Lines:
    """A file's lines as text for csv, each decoded alone (an error names its line): a row
    at most MAX_ROW_BYTES (never more is read at once), the file at most MAX_FILE_BYTES."""

    def __init__(self, file: IO[bytes]):
        self.file, self.number, self.file_bytes = file, 0, 0
        self.next_row()

    def next_row(self) -> None:
        self.row_start, self.row_bytes = self.number + 1, 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = self.file.readline(MAX_ROW_BYTES - self.row_bytes + 1)
        if not line:
            raise StopIteration
        self.number += 1
        self.row_bytes += len(line)
        self.file_bytes += len(line)
        if self.row_bytes > MAX_ROW_BYTES:
            unclosed = f" (to line {self.number}: a quote not closed?)" if self.number > self.row_start else ""
            raise BillError(f"line {self.row_start}: a row longer than {MAX_ROW_BYTES:,} bytes{unclosed}")
        if self.file_bytes > MAX_FILE_BYTES:
            raise BillError(f"line {self.number}: the file is larger than {MAX_FILE_BYTES:,} bytes")
        try:
            text = line.decode("utf-8-sig" if self.number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise BillError(f"line {self.number}: not UTF-8 text (is it compressed? gunzip a .csv.gz)") from None
        if "\0" in text:
            raise BillError(f"line {self.number}: a NUL byte: not a CSV text file")
        return text


def _shown(value) -> str:
    """A value in a message: quoted, its first 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _amount(number: int, what: str, text) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and abs(value) <= MAX_AMOUNT):
        raise BillError(
            f"line {number}: the {what} {_shown(text)} is not an amount from -{MAX_AMOUNT:.0e} to {MAX_AMOUNT:.0e}"
        )
    return value


def _credits(number: int, text: str) -> list:
    """The amounts of the GCP export's `credits`: a JSON list of {"amount": ...}."""
    try:
        credits = json.loads(text)
    except (ValueError, RecursionError):
        credits = None
    if not isinstance(credits, list) or not all(isinstance(credit, dict) for credit in credits):
        raise BillError(f'line {number}: the credits {_shown(text)} are not a JSON list of {{"amount": ...}}')
    return [credit.get("amount", 0) for credit in credits]


def _day(number: int, text: str) -> int:
    """The UTC day of an ISO date and time (AWS: 2026-11-02T00:00:00Z; GCP: 2026-11-02 00:00:00 UTC)."""
    try:
        moment = to_ms(datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace(" UTC", "+00:00")))
    except ValueError:
        raise BillError(f"line {number}: the date {_shown(text)} is not an ISO 8601 date and time") from None
    if not to_ms(EARLIEST) <= moment < to_ms(LATEST):
        raise BillError(
            f"line {number}: the date {_shown(text)} is outside the years {EARLIEST.year}-{LATEST.year - 1}"
        )
    return moment // DAY_MS


def store_bill(db: DB, source: str, totals: dict[tuple[int, str], float], currency: str, now_ms: int) -> int:
    """Replace the days the bill covers with its lines; returns how many lines."""
    days = {day for day, _ in totals}
    if days:
        db.execute(delete(BillLine).where(BillLine.source == source, BillLine.day.in_(sorted(days))))
    db.add_all(
        BillLine(
            source=source, day=day, service=service[:SERVICE_CHARS], cost=value, currency=currency, imported_ms=now_ms
        )
        for (day, service), value in totals.items()
    )
    db.commit()
    return len(totals)


def bill_by_service(db: DB, start_ms: int, end_ms: int) -> dict[str, float]:
    rows = db.execute(
        select(BillLine.service, func.sum(BillLine.cost))
        .where(BillLine.day >= start_ms // DAY_MS, BillLine.day < -(-end_ms // DAY_MS))
        .group_by(BillLine.service)
    )
    return {service: float(total) for service, total in rows}


@dataclass(frozen=True)
class Fee:
    """The operator's fee: a fixed amount per month and/or a percentage of the cloud cost."""

    monthly: float = 0.0
    percent: float = 0.0


def month_window(year: int, month: int) -> tuple[int, int]:
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return to_ms(start), to_ms(end)


@in_one_snapshot
def statement(db: DB, basis: CostBasis, year: int, month: int, fee: Fee, now_ms: int) -> dict:
    """A month's statement: the cloud cost (the imported bill, else what the sessions were
    charged), the operator's fee, the total, how much of the bill was attributed, the
    period it covers (the month so far, for this month) and its lines (statement_lines)."""
    start, end = month_window(year, month)
    end = min(end, max(start, now_ms))
    by_user = cost(db, basis, start, end, "user", now_ms)
    by_group = cost(db, basis, start, end, "group", now_ms)
    homes = storage_cost(db, basis, start, end, "group")
    attributed = sum(v.compute_cost for v in by_user.values()) + sum(homes.values())
    services = bill_by_service(db, start, end)
    bill = sum(services.values()) if services else None
    cloud = bill if bill is not None else attributed
    fee_amount = fee.monthly + fee.percent / 100 * cloud
    return {
        "month": f"{year:04d}-{month:02d}",
        "currency": basis.pricing.currency,
        "bill": bill,
        "bill_by_service": services,
        "attributed": attributed,
        "unattributed": None if bill is None else bill - attributed,
        "cloud_cost": cloud,
        "fee_monthly": fee.monthly,
        "fee_percent": fee.percent,
        "fee": fee_amount,
        "total": cloud + fee_amount,
        # of the cloud bill, the share attributed to people's servers
        "cost_recovery": None if not bill else attributed / bill,
        "by_group": {
            name: by_group.get(name, NO_COST).compute_cost + homes.get(name, 0.0) for name in set(by_group) | set(homes)
        },
        "group_rule": basis.group_rule,
        **period(year, month, now_ms),
        "lines": statement_lines(db, basis, start, end, now_ms),
    }


@in_one_snapshot
def group_statement(db: DB, basis: CostBasis, year: int, month: int, group: str, now_ms: int) -> dict:
    """One group's statement for a month (its lead's): its people's lines and the
    resources, as counted for this group; nothing of the bill, the fee or other groups."""
    start, end = month_window(year, month)
    end = min(end, max(start, now_ms))
    lines = group_lines(db, basis, start, end, group, now_ms)
    return {
        "month": f"{year:04d}-{month:02d}",
        "currency": basis.pricing.currency,
        "group": group,
        "total": lines["totals"]["person"]["total_cost"],
        "group_rule": basis.group_rule,
        **period(year, month, now_ms),
        "lines": lines,
    }
