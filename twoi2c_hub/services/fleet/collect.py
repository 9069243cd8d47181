"""Collecting the fleet's figures from its hubs (`twoi2c-hub fleet collect`).

For each hub with a `url`, with the token in its `token_env`, through the hub's own
services, as any API client of them, with the least scopes that work
(`custom:usage:digests` and `custom:cost:statements`, and access to the two services):

- `usage/api/v1/people-digests`: for each UTC day, the digests of the people active that
  day (a month of days a request);
- `cost/api/v1/statements/YYYY-MM`: each month's attributed cost, fee and bill.

The first collection reaches back `history_days`; later ones ask again only for the last
`recheck_days` (7 by default: a late stop, or a reconciliation after the usage service was
down, can still change recent days), and for last month's and this month's statements (a
bill imported after the month ended changes the fee).

Hubs are asked at once, each on its own, never following a redirect (the token goes to
the hub's address only). A hub that is down, slow, refuses the token or answers anything
the fleet cannot use keeps the figures it gave before, marked with the time of its last
full answer and its error, and the others are collected all the same. A hub's new
figures replace its old ones in one transaction, so a pull that fails half-way changes
nothing; one collection of a fleet database runs at a time. Once the hubs are saved, every
group's active users are counted again from the earliest day that changed, so that the
pages and API read them rather than count them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, ValidationError, field_validator
from sqlalchemy.orm import sessionmaker
from tornado.httpclient import HTTPClientError

from ...accounting import fleet_store
from ...accounting.db import make_engine, session_maker
from ...accounting.fleet_store import day_number, day_of
from ...accounting.models import DAY_MS
from ...config.fleet import FleetConfig, HubSpec
from ..framework.hubapi import HubAPI

log = logging.getLogger("twoi2c.fleet")

# days asked for in one request (the usage service answers at most 400): a month of a large
# hub's people is a few MB, a year's would be a hundred
DAYS_A_REQUEST = 31
MAX_PEOPLE_A_DAY = 1_000_000
# the most (day, person) pairs one hub may give in one collection: 400 days of 25,000 people
# a day; more is a hub that is not telling the truth, not one to keep in memory
MAX_PERSON_DAYS = 10_000_000
CONCURRENCY = 8  # hubs asked at once
RETRIES = 1  # a hub that fails twice in a row is left for the next collection

Digest = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]


class DigestsAnswer(BaseModel):
    """`people-digests`' data, as a hub of this version gives it."""

    digest: Literal["hmac-sha256-128"]
    days: dict[date, Annotated[list[Digest], Field(max_length=MAX_PEOPLE_A_DAY)]]


class StatementAnswer(BaseModel):
    """The parts of a month's statement the fleet keeps."""

    month: str
    currency: str
    bill: float | None = None
    attributed: float
    fee: float

    @field_validator("bill", "attributed", "fee")
    @classmethod
    def _amount(cls, value):
        if value is not None and not (math.isfinite(value) and abs(value) <= 1e12):
            raise ValueError("must be a finite amount")
        return value


class PackedDays(Mapping[int, list[str]]):
    """A hub's people by day as the collector holds them until they are saved: each day's
    digests packed as 16 bytes each (a year of a large hub's people in a fifth of the
    memory their hex strings take), given back as hex, day by day."""

    def __init__(self) -> None:
        self.packed: dict[int, bytes] = {}

    def add(self, day: int, digests: list[str]) -> None:
        self.packed[day] = bytes.fromhex("".join(digests))

    def __getitem__(self, day: int) -> list[str]:
        blob = self.packed[day]
        return [blob[i : i + 16].hex() for i in range(0, len(blob), 16)]

    def __iter__(self) -> Iterator[int]:
        return iter(self.packed)

    def __len__(self) -> int:
        return len(self.packed)


class CollectionError(Exception):
    """A hub's answer the fleet cannot use, in words for the operator."""


@dataclass
class Collected:
    """What one hub's collection did."""

    hub: str
    ok: bool
    days: int = 0  # days asked for
    people: int = 0  # (day, person) pairs kept
    months: int = 0
    seconds: float = 0.0
    error: str | None = None
    last_collected_ms: int | None = None  # its figures are as of then (a failure keeps them)
    first_day: int | None = None  # the first day whose people this collection replaced

    def line(self) -> str:
        if self.ok and not self.days:
            return f"{self.hub}: nothing new (its archive was read before; --full reads it again)"
        if self.ok:
            return (
                f"{self.hub}: {self.days} days ({self.people} person-days), {self.months} months, {self.seconds:.1f} s"
            )
        kept = (
            f"keeping its figures as of {datetime.fromtimestamp(self.last_collected_ms / 1000, UTC):%Y-%m-%d %H:%M} UTC"
            if self.last_collected_ms
            else "no figures from it yet"
        )
        return f"{self.hub}: NOT COLLECTED: {self.error}; {kept}"


def iso_day(number: int) -> str:
    return f"{day_of(number).isoformat()}T00:00:00Z"


def months_between(first_day: int, last_day: int) -> list[str]:
    """The months (YYYY-MM) the days touch, in order."""
    first, last = day_of(first_day), day_of(last_day)
    months, year, month = [], first.year, first.month
    while (year, month) <= (last.year, last.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def describe(error: Exception, hub: HubSpec, timeout: float) -> str:
    """A failure in words, without the token or the URL's query, and nothing of what the hub
    sent that a terminal or a log would take for a control character."""
    return "".join(c if c.isprintable() else "?" for c in _describe(error, hub, timeout))


def _describe(error: Exception, hub: HubSpec, timeout: float) -> str:
    if isinstance(error, HTTPClientError):
        if error.code == 599:
            return f"no answer within {timeout:g} s or no connection ({error.message})"
        if error.code in (401, 403):
            return (
                f"the hub refused the token in {hub.token_env} ({error.code}): it needs the scopes "
                "custom:usage:digests and custom:cost:statements and access to the usage and cost services"
            )
        if error.code == 404:
            return "the hub has no such page (404): is it a twoi2c hub in the fleet (usage.fleet_secret_env)?"
        if 300 <= error.code < 400:
            return f"the hub answered a redirect ({error.code}), which the fleet does not follow: is its url right?"
        return f"the hub answered {error.code}"
    if isinstance(error, json.JSONDecodeError):
        return "the hub's answer is not JSON (is the address a twoi2c hub's?)"
    if isinstance(error, ValidationError):
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"the hub's answer is not what the fleet reads: {where}: {first['msg']}"[:300]
    if isinstance(error, OSError):
        return f"cannot reach the hub ({error.strerror or error})"
    if isinstance(error, CollectionError):
        return str(error)[:300]
    return f"the hub's answer could not be read ({type(error).__name__})"


async def pull(hub: HubSpec, fleet: FleetConfig, first: int, last: int) -> tuple[PackedDays, dict[str, dict]]:
    """The hub's people from day `first` to `last` (included), and the months they touch
    with last month's (its bill and fee may come days after it ends)."""
    token = os.environ.get(hub.token_env or "", "")
    if not token:
        raise CollectionError(f"the environment variable {hub.token_env} holding its token is not set")
    api = HubAPI(
        f"{hub.url.rstrip('/')}/services",
        token,
        timeout=fleet.fleet.request_timeout,
        retries=RETRIES,
        follow_redirects=False,  # the token goes to the hub's address only
        name=f"Hub {hub.name}",
    )
    days = PackedDays()
    pairs = 0
    for start in range(first, last + 1, DAYS_A_REQUEST):
        end = min(start + DAYS_A_REQUEST - 1, last)
        answer = await api.request(
            "GET", "/usage/api/v1/people-digests", params={"window": f"{iso_day(start)},{iso_day(end + 1)}"}
        )
        data = DigestsAnswer.model_validate(_data(answer))
        for day, digests in data.days.items():
            if not start <= day_number(day) <= end:
                raise CollectionError(f"the hub answered for {day}, a day it was not asked about")
            days.add(day_number(day), digests)
            pairs += len(digests)
        if pairs > MAX_PERSON_DAYS:
            raise CollectionError(f"the hub gave more than {MAX_PERSON_DAYS:,} person-days: not collected")
    this_month = day_of(last).replace(day=1)
    last_month = day_number(this_month - timedelta(days=1))
    months = {}
    for month in months_between(min(first, last_month), last):
        statement = StatementAnswer.model_validate(_data(await api.request("GET", f"/cost/api/v1/statements/{month}")))
        if statement.month != month:
            raise CollectionError(f"the hub answered the statement of {statement.month[:10]!r} for {month}")
        if statement.currency != fleet.fleet.currency:
            raise CollectionError(
                f"the hub's prices are in {statement.currency[:10]!r}, the fleet's in {fleet.fleet.currency}: "
                "nothing is converted"
            )
        months[month] = {
            "currency": statement.currency,
            "attributed_cost": statement.attributed,
            "fee": statement.fee,
            "bill": statement.bill,
        }
    return days, months


def _data(answer: Any) -> Any:
    if not isinstance(answer, dict) or "data" not in answer:
        raise CollectionError("the hub's answer has no data")
    return answer["data"]


async def in_turn(writing: asyncio.Lock, work, *args):
    """`work(*args)` in a thread, once no other hub's is writing to the fleet's database:
    SQLite takes one writer at a time, and a large hub's save would otherwise make another
    hub's wait past its busy timeout ("database is locked")."""
    async with writing:
        return await asyncio.to_thread(work, *args)


async def collect_hub(
    store: sessionmaker,
    fleet: FleetConfig,
    hub: HubSpec,
    base: Path,
    now_ms: int,
    full: bool,
    writing: asyncio.Lock | None = None,
) -> Collected:
    """One hub's collection; any failure is the hub's (its figures kept), never the fleet's.
    `writing`: the lock the hubs of one collection write to the database in turn with."""
    writing = writing or asyncio.Lock()
    began = time.perf_counter()
    today = now_ms // DAY_MS
    final_day, last_collected = await in_turn(writing, _state, store, hub.name)
    earliest = today - fleet.fleet.history_days + 1
    archived_from = None
    try:
        if hub.archive and (full or final_day is None):
            from .archives import from_archive  # (it reads what this module defines)

            days, months, first, last = await asyncio.to_thread(from_archive, fleet, hub, base, now_ms)
            people = await in_turn(writing, _save, store, hub.name, first, last, days, months, now_ms, last)
            if not hub.url:  # a hub that left: its archive is all there is
                took = time.perf_counter() - began
                return Collected(
                    hub.name,
                    True,
                    last - first + 1,
                    people,
                    len(months),
                    took,
                    last_collected_ms=now_ms,
                    first_day=first,
                )
            final_day, archived_from = last, first
        elif not hub.url:
            return Collected(hub.name, True, last_collected_ms=last_collected)  # read before; --full reads again
        if final_day is None or (full and not hub.archive):
            first = earliest
        else:  # after the days final at its last answer (or its archive's last day)
            first = max(earliest, final_day + 1)
        days, months = await pull(hub, fleet, first, today)
        final = today - fleet.fleet.recheck_days
        people = await in_turn(writing, _save, store, hub.name, first, today, days, months, now_ms, final)
        del days  # a year of a large hub's people: not kept while the others are collected
    except Exception as e:  # whatever a hub answered (or its saving met), that hub alone fails
        error = describe(e, hub, fleet.fleet.request_timeout)
        if not isinstance(e, (HTTPClientError, OSError, ValidationError, CollectionError, ValueError)):
            log.warning("Collecting %s failed", hub.name, exc_info=True)
        await in_turn(writing, _failed, store, hub.name, now_ms, error)
        return Collected(hub.name, False, error=error, last_collected_ms=last_collected)
    took = time.perf_counter() - began
    changed = min(first, archived_from) if archived_from is not None else first
    return Collected(
        hub.name, True, today - first + 1, people, len(months), took, last_collected_ms=now_ms, first_day=changed
    )


def _state(store: sessionmaker, hub: str) -> tuple[int | None, int | None]:
    with store() as db:
        state = fleet_store.hub_state(db, hub)
        db.commit()
        return state.final_day, state.collected_ms


def _save(
    store: sessionmaker, hub: str, first: int, last: int, days: dict, months: dict, now_ms: int, final: int
) -> int:
    """A hub's new figures in place of its old ones from `first` to `last`, in one
    transaction; its days up to `final` will not be asked for again."""
    with store() as db:
        people = fleet_store.replace_people(db, hub, first, last, days)
        for month, figures in months.items():
            fleet_store.save_month(db, hub, month, figures, now_ms)
        state = fleet_store.hub_state(db, hub)
        state.attempted_ms = state.collected_ms = now_ms
        state.error, state.final_day = None, final
        db.commit()
    return people


def _failed(store: sessionmaker, hub: str, now_ms: int, error: str) -> None:
    with store() as db:
        state = fleet_store.hub_state(db, hub)
        state.attempted_ms, state.error = now_ms, error
        db.commit()


async def collect(fleet: FleetConfig, base: Path, *, now_ms: int | None = None, full: bool = False) -> list[Collected]:
    """Collect every hub, CONCURRENCY at once, its `archive` (relative to `base`, the fleet
    file's folder) the first time or with `full`; one `Collected` per hub. One
    collection of a fleet database runs at a time (the service's and a command's wait for
    each other)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    today = now_ms // DAY_MS
    url = fleet.fleet.database_url
    fleet_store.upgrade(url)
    engine = make_engine(url)
    store = session_maker(engine)
    at_once = asyncio.Semaphore(CONCURRENCY)
    writing = asyncio.Lock()

    async def one(hub: HubSpec) -> Collected:
        async with at_once:
            return await collect_hub(store, fleet, hub, base, now_ms, full, writing)

    try:
        async with fleet_store.one_collection_at_a_time(url):
            results = list(await asyncio.gather(*(one(hub) for hub in fleet.hubs)))
            changed = [r.first_day for r in results if r.ok and r.first_day is not None]
            await asyncio.to_thread(_count, store, fleet, min(changed, default=today), today)
            return results
    finally:
        engine.dispose()


def _count(store: sessionmaker, fleet: FleetConfig, first_day: int, today: int) -> None:
    """Every group's active users counted again from `first_day` (the earliest day a hub's
    people changed) to `today`, for the pages and API to read."""
    with store() as db:
        fleet_store.save_counts(db, fleet.placement(), first_day, today)
        db.commit()
