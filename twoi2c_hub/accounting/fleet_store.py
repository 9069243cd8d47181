"""The fleet's own database: what the collector pulled from each hub, kept for the fleet's
pages and API (and kept when a hub stops answering: its last figures, with their time).

- `fleet_hubs`: each hub's collection state: when it was last tried, when it last
  answered in full, the last error, and the last UTC day whose people are final there;
- `fleet_people`: for each hub and UTC day, the keyed digests of the people active that
  day (never a name: `accounting.fleet.person_digest`, computed on the hub);
- `fleet_hub_months`: each hub's month as its own statement gives it: the cost its cost
  service attributed, the fee it bills, the cloud bill it imported, as of when;
- `fleet_active_users`: each hub's, cluster's, community's and the fleet's daily, weekly
  and monthly active users on each day, counted from `fleet_people` after each collection
  (for the days it changed and those after), so that the pages and API read them rather
  than count them; `fleet_counted` says which days and for which placement of the hubs.

Its schema is managed by its own Alembic migrations (`fleet_migrations`, with their own
version table, so the fleet may share a PostgreSQL database with a hub's accounting).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from alembic import command
from sqlalchemy import BigInteger, Float, Index, Integer, String, Text, delete, func, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from .db import alembic_config, make_engine, one_upgrade_at_a_time
from .fleet import WINDOW_DAYS, ActiveUsers, Activity, count_days
from .fleet_money import HubMonth

MIGRATIONS = Path(__file__).parent / "fleet_migrations"
VERSION_TABLE = "fleet_alembic_version"
EPOCH = date(1970, 1, 1)


class FleetBase(DeclarativeBase):
    pass


class CollectedHub(FleetBase):
    """A hub's collection state."""

    __tablename__ = "fleet_hubs"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    attempted_ms: Mapped[int | None] = mapped_column(BigInteger)
    collected_ms: Mapped[int | None] = mapped_column(BigInteger)  # the last pull that answered in full
    error: Mapped[str | None] = mapped_column(Text)  # the last pull's failure; None once one succeeds
    final_day: Mapped[int | None] = mapped_column(Integer)  # the last day (since 1970) whose people are final


class PersonDay(FleetBase):
    __tablename__ = "fleet_people"

    hub: Mapped[str] = mapped_column(String(100), primary_key=True)
    day: Mapped[int] = mapped_column(Integer, primary_key=True)  # days since 1970, UTC
    digest: Mapped[str] = mapped_column(String(32), primary_key=True)

    __table_args__ = (Index("fleet_people_by_day", "day", "hub"),)


class HubMonthFigures(FleetBase):
    __tablename__ = "fleet_hub_months"

    hub: Mapped[str] = mapped_column(String(100), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # YYYY-MM
    currency: Mapped[str] = mapped_column(String(3))
    attributed_cost: Mapped[float] = mapped_column(Float)
    fee: Mapped[float] = mapped_column(Float)
    bill: Mapped[float | None] = mapped_column(Float)
    as_of_ms: Mapped[int] = mapped_column(BigInteger)


class CountedDay(FleetBase):
    """A group's active users on a day, counted when the people were collected."""

    __tablename__ = "fleet_active_users"

    aggregate: Mapped[str] = mapped_column(String(10), primary_key=True)  # hub, cluster, community, fleet
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    daily: Mapped[int] = mapped_column(Integer)
    weekly: Mapped[int] = mapped_column(Integer)
    monthly: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("fleet_active_users_by_day", "aggregate", "day"),)


class Counted(FleetBase):
    """What `fleet_active_users` holds: the days counted, for which placement of the hubs
    (a digest of the fleet config's hubs, clusters and communities; another placement, and
    the counts are not read until they are counted again)."""

    __tablename__ = "fleet_counted"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # one row: 1
    placement: Mapped[str] = mapped_column(String(64))
    first_day: Mapped[int] = mapped_column(Integer)
    last_day: Mapped[int] = mapped_column(Integer)


# a PostgreSQL advisory lock's key: one collection into a fleet database at a time
COLLECTION_LOCK = 0x7132_F1EE


@asynccontextmanager
async def one_collection_at_a_time(url: str) -> AsyncIterator[None]:
    """Wait for any other collection into the database at `url` (the fleet service's and a
    command's, or two runs of a schedule), then hold it off until this one ends: a
    PostgreSQL advisory lock, or a lock on a file beside an SQLite database."""
    if url.startswith("postgresql"):
        engine = make_engine(url)
        connection = await asyncio.to_thread(engine.connect)
        try:
            await asyncio.to_thread(connection.exec_driver_sql, f"SELECT pg_advisory_lock({COLLECTION_LOCK})")
            try:
                yield
            finally:
                connection.exec_driver_sql(f"SELECT pg_advisory_unlock({COLLECTION_LOCK})")
                connection.commit()
        finally:
            connection.close()
            engine.dispose()
        return
    database = make_url(url).database
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.collect-lock", "a") as lock:
        await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the fleet database at `url` to `revision`. Idempotent; upgrades started at once
    run one after the other."""
    config = alembic_config(url, MIGRATIONS)
    with one_upgrade_at_a_time(url):
        command.upgrade(config, revision)


def day_number(day: date) -> int:
    return (day - EPOCH).days


def day_of(number: int) -> date:
    return EPOCH + timedelta(days=number)


def hub_state(db: Session, hub: str) -> CollectedHub:
    """The hub's collection state, made the first time it is asked for."""
    state = db.get(CollectedHub, hub)
    if state is None:
        state = CollectedHub(name=hub)
        db.add(state)
    return state


def replace_people(db: Session, hub: str, first_day: int, last_day: int, days: Mapping[int, Iterable[str]]) -> int:
    """Make the hub's people from `first_day` to `last_day` (included) those of `days`;
    returns how many (day, digest) rows that is."""
    db.execute(delete(PersonDay).where(PersonDay.hub == hub, PersonDay.day >= first_day, PersonDay.day <= last_day))
    count, rows = 0, []
    for day, digests in days.items():  # a batch of rows at a time: a year of a large hub is millions
        rows.extend({"hub": hub, "day": day, "digest": d} for d in sorted(set(digests)))
        if len(rows) >= 5000:
            db.execute(insert(PersonDay), rows)
            count, rows = count + len(rows), []
    if rows:
        db.execute(insert(PersonDay), rows)
    return count + len(rows)


def placement_key(placement: Mapping[str, tuple[str, str]]) -> str:
    """A digest of where every hub is (hub, cluster, community), for `Counted.placement`."""
    text = "\n".join(f"{hub}\t{cluster}\t{community}" for hub, (cluster, community) in sorted(placement.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def people_by_day(
    db: Session, hubs: Iterable[str], first_day: int, last_day: int
) -> Iterator[tuple[int, dict[str, set[str]]]]:
    """Each day from `first_day` to `last_day` (included, in order, days with nobody too)
    with each hub's digests that day, read a batch at a time."""
    query = (
        select(PersonDay.day, PersonDay.hub, PersonDay.digest)
        .where(PersonDay.day >= first_day, PersonDay.day <= last_day, PersonDay.hub.in_(list(hubs)))
        .order_by(PersonDay.day)
        .execution_options(yield_per=20_000)
    )
    current, found = first_day, {}
    for day, hub, digest in db.execute(query):
        while current < day:
            yield current, found
            current, found = current + 1, {}
        found.setdefault(hub, set()).add(digest)
    while current <= last_day:
        yield current, found
        current, found = current + 1, {}


def save_counts(db: Session, placement: Mapping[str, tuple[str, str]], first_day: int, last_day: int) -> None:
    """Count every group's active users on each day from `first_day` to `last_day` from the
    people kept, in place of any counts of those days; the counts then cover the days from
    the earliest still counted for this placement (all of them again for another) to
    `last_day`."""
    key = placement_key(placement)
    state = db.get(Counted, 1)
    if state is None or state.placement != key or state.first_day > first_day:
        earliest = db.scalar(select(func.min(PersonDay.day)))
        first_day = min(first_day, earliest if earliest is not None else first_day)
        db.execute(delete(CountedDay))
        state = state or Counted(id=1)
        state.placement, state.first_day, state.last_day = key, first_day, last_day
        db.add(state)
    else:  # and the days since the last counted, if collections stopped for a while
        first_day = min(first_day, state.last_day + 1)
        db.execute(delete(CountedDay).where(CountedDay.day >= first_day))
    reach = max(WINDOW_DAYS.values()) - 1  # the days before `first_day` its monthly figure reads
    days = ((day_of(n), by_hub) for n, by_hub in people_by_day(db, placement, first_day - reach, last_day))
    rows = []
    for day, aggregate, name, counts in count_days(days, placement, day_of(first_day)):
        rows.append({"aggregate": aggregate, "name": name, "day": day_number(day), **counts._asdict()})
        if len(rows) >= 5000:
            db.execute(insert(CountedDay), rows)
            rows = []
    if rows:
        db.execute(insert(CountedDay), rows)
    state.last_day = last_day


def counted_days(db: Session, placement: Mapping[str, tuple[str, str]]) -> tuple[int, int] | None:
    """The first and last day counted for this placement of the hubs, or None."""
    state = db.execute(select(Counted.placement, Counted.first_day, Counted.last_day).where(Counted.id == 1)).first()
    if state is None or state.placement != placement_key(placement):
        return None
    return state.first_day, state.last_day


def counts(db: Session, aggregate: str, first_day: int, last_day: int) -> dict[int, dict[str, ActiveUsers]]:
    """The counts of `aggregate` from `first_day` to `last_day` (days `counted_days` gives),
    by day and name; groups with nobody left out."""
    found: dict[int, dict[str, ActiveUsers]] = {day: {} for day in range(first_day, last_day + 1)}
    query = select(CountedDay.day, CountedDay.name, CountedDay.daily, CountedDay.weekly, CountedDay.monthly).where(
        CountedDay.aggregate == aggregate, CountedDay.day >= first_day, CountedDay.day <= last_day
    )
    for day, name, *figures in db.execute(query):
        found[day][name] = ActiveUsers(*figures)
    return found


def save_month(db: Session, hub: str, month: str, figures: dict, as_of_ms: int) -> None:
    db.merge(
        HubMonthFigures(
            hub=hub,
            month=month,
            currency=figures["currency"],
            attributed_cost=figures["attributed_cost"],
            fee=figures["fee"],
            bill=figures["bill"],
            as_of_ms=as_of_ms,
        )
    )


def activity(db: Session, hubs: Iterable[str], first: date, last: date) -> Activity:
    """hub -> day -> digests, for `accounting.fleet.active_users` (the 29 days before
    `first` are needed for a monthly figure on `first`: ask for them)."""
    found: dict[str, dict[date, set[str]]] = {hub: {} for hub in hubs}
    query = select(PersonDay.hub, PersonDay.day, PersonDay.digest).where(
        PersonDay.day >= day_number(first), PersonDay.day <= day_number(last), PersonDay.hub.in_(list(found))
    )
    for hub, day, digest in db.execute(query):
        found[hub].setdefault(day_of(day), set()).add(digest)
    return found


def hub_months(db: Session, month: str) -> dict[str, HubMonth]:
    """Each hub's figures for `month` (YYYY-MM), as `fleet_money.month_money` takes them."""
    return {
        row.hub: HubMonth(Decimal(repr(row.attributed_cost)), Decimal(repr(row.fee)))
        for row in db.scalars(select(HubMonthFigures).where(HubMonthFigures.month == month))
    }
