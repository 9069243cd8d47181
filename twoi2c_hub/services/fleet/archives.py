"""A hub's figures from its export archive (`twoi2c-hub export`), for the fleet: the history
of a community that left, or of a hub from before it joined. The archive is imported into
a database of its own (as `twoi2c-hub import` does, with the same checks), and the fleet
computes from it what the hub itself would answer: each day's people as keyed digests
(with the fleet secret, here rather than on the hub) and each month's statement with the
archived config's prices and fee. Nothing of the archive stays but those figures.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sqlalchemy import func, select

from ...accounting.activity import people_by_day
from ...accounting.bills import Fee, statement
from ...accounting.costs import CostBasis
from ...accounting.db import make_engine, session_maker
from ...accounting.fleet import person_digest
from ...accounting.models import DAY_MS, ServerSession
from ...config.fleet import FleetConfig, HubSpec
from ...config.loading import load_config
from ...replicate.archive import ArchiveError
from ...replicate.restore import restore
from .collect import CollectionError, months_between


def fleet_secret(fleet: FleetConfig) -> bytes:
    """The fleet secret from its variable, as the hubs read it; CollectionError if unusable."""
    value = os.environ.get(fleet.fleet.secret_env, "")
    try:
        secret = bytes.fromhex(value)
    except ValueError:
        secret = b""
    if len(secret) < 32:
        raise CollectionError(
            f"the fleet secret in {fleet.fleet.secret_env} is unset, not hex or shorter than 32 bytes: "
            "an archive's people are digested by the fleet"
        )
    return secret


def from_archive(fleet: FleetConfig, hub: HubSpec, base: Path, now_ms: int) -> tuple[dict, dict, int, int]:
    """(days: {day: digests}, months: {YYYY-MM: figures}, first day, last day) of the hub's
    archive; CollectionError (or the import's ArchiveError) saying what is wrong."""
    secret = fleet_secret(fleet)
    archive = (base / hub.archive).resolve()
    if not archive.is_file():
        raise CollectionError(f"no archive at {archive}")
    with tempfile.TemporaryDirectory(prefix="twoi2c-fleet-archive-") as work:
        url = f"sqlite:///{Path(work) / 'hub.sqlite'}"
        config_path = Path(work) / "community.yaml"
        try:
            restore(archive, url, config_path)
        except ArchiveError as e:
            raise CollectionError(f"its archive cannot be read: {' '.join(str(e).splitlines())}"[:300]) from None
        engine = make_engine(url)
        try:
            with session_maker(engine)() as db:
                stopped = func.coalesce(ServerSession.stopped_ms, now_ms)
                first_ms, last_ms = db.execute(select(func.min(ServerSession.started_ms), func.max(stopped))).one()
                if first_ms is None:
                    return {}, {}, now_ms // DAY_MS, now_ms // DAY_MS
                first, last = first_ms // DAY_MS, max(first_ms, last_ms - 1) // DAY_MS
                per_day = people_by_day(db, first, last, now_ms)
                names = set().union(*per_day.values()) if per_day else set()
                digests = {name: person_digest(secret, name) for name in names}
                days = {day: sorted(digests[n] for n in people) for day, people in per_day.items()}
                months = _months(db, config_path, fleet, first, last, now_ms) if config_path.exists() else {}
        finally:
            engine.dispose()
    return days, months, first, last


def _months(db, config_path: Path, fleet: FleetConfig, first: int, last: int, now_ms: int) -> dict[str, dict]:
    config = load_config(config_path, overrides=False)
    if config.pricing is None:
        return {}  # a hub without prices attributed no cost
    pricing = config.pricing
    if pricing.currency != fleet.fleet.currency:
        raise CollectionError(
            f"the archive's prices are in {pricing.currency!r}, the fleet's in {fleet.fleet.currency}: "
            "nothing is converted"
        )
    basis = CostBasis(
        pricing.to_pricing(),
        config.instance_catalog(),
        group_rule=pricing.group_rule,
        primary_groups=tuple(pricing.primary_groups),
    )
    fee = Fee(pricing.fee.monthly, pricing.fee.percent)
    months = {}
    for month in months_between(first, last):
        year, number = int(month[:4]), int(month[5:7])
        s = statement(db, basis, year, number, fee, now_ms)
        months[month] = {
            "currency": s["currency"],
            "attributed_cost": s["attributed"],
            "fee": s["fee"],
            "bill": s["bill"],
        }
    return months
