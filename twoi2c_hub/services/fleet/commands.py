"""`twoi2c-hub fleet collect` and `twoi2c-hub fleet report`: what the operator runs."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import make_url

from ...accounting import fleet as people_once
from ...accounting.db import make_engine, session_maker
from ...accounting.fleet_store import upgrade as upgrade_fleet
from ...config.fleet import load_fleet
from ...config.loading import ConfigError
from . import report as figures
from .collect import collect as collect_all


def collect(args) -> int:
    try:
        fleet = load_fleet(args.config)
    except ConfigError as e:
        for line in e.errors:
            print(f"{e.path}: {line}", file=sys.stderr)
        return 1
    began = time.perf_counter()
    results = asyncio.run(collect_all(fleet, Path(args.config).resolve().parent, full=args.full))
    took = time.perf_counter() - began
    for result in results:
        print(result.line(), file=sys.stdout if result.ok else sys.stderr)
    failed = sum(not r.ok for r in results)
    shown = _shown_url(fleet.fleet.database_url)
    print(f"{len(results) - failed} of {len(results)} hubs collected into {shown} in {took:.1f} s")
    return 1 if failed else 0


def report(args) -> int:
    try:
        fleet = load_fleet(args.config)
        day = date.fromisoformat(args.day) if args.day else datetime.now(UTC).date() - timedelta(days=1)
        month = args.month or f"{day:%Y-%m}"
        figures.month_of(month)
    except ConfigError as e:
        for line in e.errors:
            print(f"{e.path}: {line}", file=sys.stderr)
        return 1
    except ValueError:
        print("--day is a date like 2026-11-30 and --month a month like 2026-11", file=sys.stderr)
        return 1
    upgrade_fleet(fleet.fleet.database_url)
    engine = make_engine(fleet.fleet.database_url)
    store = session_maker(engine)
    try:
        with store() as db:
            people = figures.active_users(db, fleet, day, args.aggregate)
            monthly = {hub: c.monthly for hub, c in figures.active_users(db, fleet, day, "hub").items()}
            money = figures.money(db, fleet, Path(args.config).resolve().parent, month)
            states = figures.hub_states(db, fleet, int(time.time() * 1000))
    finally:
        engine.dispose()
    rows = {**money.communities, "fleet": money.total}
    if args.json:
        print(json.dumps({
            "day": day.isoformat(),
            "aggregate": args.aggregate,
            "active_users": {name: counts._asdict() for name, counts in people.items()},
            "month": month,
            "currency": fleet.fleet.currency,
            "money": {name: {k: _text(v) for k, v in m._asdict().items()} for name, m in rows.items()},
            "unallocated": str(money.unallocated),
            "stale": [{"hub": s.hub, "collected_ms": s.collected_ms, "error": s.error} for s in states if s.stale],
            "hubs_by_size": people_once.hubs_by_size(monthly),
        }))  # fmt: skip
        return 0
    print(f"{fleet.fleet.name}: people active on {day}, in the 7 and the 30 days to it (once per {args.aggregate})")
    print(f"{args.aggregate:<20} {'daily':>8} {'weekly':>8} {'monthly':>8}")
    for name, counts in people.items():
        print(f"{name:<20} {counts.daily:>8} {counts.weekly:>8} {counts.monthly:>8}")
    sizes = [f"{size}: {len(names)}" for size, names in people_once.hubs_by_size(monthly).items() if names]
    print(f"Hubs by their people in the 30 days to {day}: {', '.join(sizes)}")
    print(f"\nMoney for {month} ({fleet.fleet.currency})")
    print(f"{'community':<20} {'attributed':>12} {'shared':>12} {'cost':>12} {'fee':>12} {'recovery':>9}")
    for name, m in rows.items():
        recovery = "" if m.recovery is None else f"{m.recovery * 100:.2f} %"
        amounts = " ".join(f"{v:>12,.2f}" for v in (m.attributed_cost, m.shared_cost, m.cost, m.fee))
        print(f"{name:<20} {amounts} {recovery:>9}")
    if money.unallocated:
        print(f"(shared cost no community took: {money.unallocated:,.2f})")
    for state in states:
        if state.stale:
            when = (
                f"last collected {datetime.fromtimestamp(state.collected_ms / 1000, UTC):%Y-%m-%d %H:%M} UTC"
                if state.collected_ms
                else "never collected"
            )
            print(f"Stale: {state.hub} ({when}{'; ' + state.error if state.error else ''})")
    return 0


def _shown_url(url: str) -> str:
    """A database URL without its password."""
    return make_url(url).render_as_string(hide_password=True)


def _text(value: object) -> str | None:
    """A decimal amount as JSON keeps it exactly: a string."""
    return None if value is None else str(value)
