"""The fleet's own database: what the collector pulled from each hub, kept for the fleet's
pages and API (and kept when a hub stops answering: its last figures, with their time).

- `fleet_hubs`: each hub's collection state: when it was last tried, when it last
  answered in full, the last error, and the last UTC day whose people are final there;
- `fleet_people`: for each hub and UTC day, the keyed digests of the people active that
  day (never a name: `accounting.fleet.person_digest`, computed on the hub);
- `fleet_hub_months`: each hub's month as its own statement gives it: the cost its cost
  service attributed, the fee it bills, the cloud bill it imported, as of when.

Its schema is managed by its own Alembic migrations (`fleet_migrations`, with their own
version table, so the fleet may share a PostgreSQL database with a hub's accounting).
"""

from __future__ import annotations

import asyncio
import fcntl
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from alembic import command
from sqlalchemy import BigInteger, Float, Index, Integer, String, Text, delete, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from .db import alembic_config, make_engine, one_upgrade_at_a_time
from .fleet import Activity
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
    rows = [dict(hub=hub, day=day, digest=d) for day, digests in days.items() for d in sorted(set(digests))]
    for i in range(0, len(rows), 5000):
        db.execute(insert(PersonDay), rows[i : i + 5000])
    return len(rows)


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
