"""Cloud bills imported from CSV, and a month's statement.

Two exports are read, by their column names:

- AWS Cost and Usage Reports (CUR): `lineItem/UsageStartDate`, `lineItem/UnblendedCost`,
  `lineItem/CurrencyCode`, and `lineItem/ProductCode` (the service);
- the Google Cloud billing export (BigQuery, saved as CSV): `usage_start_time`, `cost`,
  `currency`, and `service.description` (the service); `credits` (a JSON list of
  `{"amount": ...}`, negative) are added when present.

A file is read as a stream and summed per UTC day and service; importing a period again
replaces the days it covers. The currency must be the prices' currency (nothing is
converted). The statement puts the bill beside what the sessions were charged: the rest,
bill minus attributed, is idle or unattributed cost (nodes nobody's server used, disks,
network, the hub itself), so the parts add up to the bill.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session as DB

from .cost_reports import cost
from .costs import CostBasis
from .models import DAY_MS, BillLine, to_ms
from .storage import storage_cost

FORMATS = {
    "aws": ("lineItem/UsageStartDate", "lineItem/UnblendedCost", "lineItem/CurrencyCode", "lineItem/ProductCode"),
    "gcp": ("usage_start_time", "cost", "currency", "service.description"),
}


class BillError(ValueError):
    """A bill that cannot be imported; the message says which line and why."""


def read_bill(lines: Iterable[str], currency: str) -> tuple[str, dict[tuple[int, str], float]]:
    """(source, {(day, service): cost}) of a CSV export, streamed."""
    reader = csv.DictReader(lines)
    header = set(reader.fieldnames or [])
    source = next((name for name, columns in FORMATS.items() if set(columns) <= header), None)
    if source is None:
        wanted = " or ".join(", ".join(columns) for columns in FORMATS.values())
        raise BillError(f"not an AWS CUR or GCP billing export: it needs the columns {wanted}")
    when, amount, unit, service = FORMATS[source]
    totals: dict[tuple[int, str], float] = defaultdict(float)
    for number, row in enumerate(reader, start=2):
        if not (row.get(amount) or "").strip():
            continue  # AWS writes lines without a cost (e.g. some tax and discount headers)
        if row[unit] != currency:
            raise BillError(f"line {number}: the currency is {row[unit]!r}, the prices' is {currency!r}")
        try:
            started = datetime.fromisoformat(row[when].strip().replace("Z", "+00:00").replace(" UTC", "+00:00"))
            value = float(row[amount])
            if source == "gcp" and (row.get("credits") or "").strip():
                value += sum(float(c.get("amount", 0)) for c in json.loads(row["credits"]))
        except (ValueError, TypeError, AttributeError) as e:
            raise BillError(f"line {number}: {e}") from None
        if started.tzinfo is None:
            started = started.replace(tzinfo=UTC)
        totals[(to_ms(started) // DAY_MS, row[service] or "(no service)")] += value
    return source, totals


def store_bill(db: DB, source: str, totals: dict[tuple[int, str], float], currency: str, now_ms: int) -> int:
    """Replace the days the bill covers with its lines; returns how many lines."""
    days = {day for day, _ in totals}
    if days:
        db.execute(delete(BillLine).where(BillLine.source == source, BillLine.day.in_(sorted(days))))
    db.add_all(
        BillLine(source=source, day=day, service=service[:255], cost=value, currency=currency, imported_ms=now_ms)
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


def statement(db: DB, basis: CostBasis, year: int, month: int, fee: Fee, now_ms: int) -> dict:
    """A month's statement: the cloud cost (the imported bill, else what the sessions were
    charged), the operator's fee, the total, and how much of the bill was attributed."""
    start, end = month_window(year, month)
    end = min(end, max(start, now_ms))
    by_user = cost(db, basis, start, end, "user", now_ms)
    by_group = cost(db, basis, start, end, "group", now_ms)
    homes = storage_cost(db, basis, start, end, "group")
    attributed = sum(v[0] + v[1] + v[2] for v in by_user.values()) + sum(homes.values())
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
            name: by_group.get(name, [0.0] * 4)[0]
            + by_group.get(name, [0.0] * 4)[1]
            + by_group.get(name, [0.0] * 4)[2]
            + homes.get(name, 0.0)
            for name in set(by_group) | set(homes)
        },  # fmt: skip
        "group_rule": basis.group_rule,
    }
