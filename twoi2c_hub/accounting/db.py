"""The accounting database: one URL (SQLite in WAL mode by default, or PostgreSQL),
its schema managed by the Alembic migrations shipped in this package."""

from __future__ import annotations

import fcntl
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str, page_cache_kib: int = 0) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and foreign keys, and each
    connection a page cache of `page_cache_kib` (0: SQLite's own default, 2 MB)."""
    if page_cache_kib < 0:
        raise ValueError(f"a page cache of {page_cache_kib} KiB: give 0 (SQLite's default) or more")
    if url.startswith("sqlite"):
        # each SQLite connection keeps its own page cache: the pool hands out the one used
        # last (LIFO), so the few connections a service needs stay warm and the others'
        # caches stay empty, rather than every pooled connection caching the same pages
        engine = create_engine(url, connect_args={"timeout": 30}, pool_use_lifo=True)

        @event.listens_for(engine, "connect")
        def _sqlite_settings(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            if page_cache_kib:
                cursor.execute(f"PRAGMA cache_size=-{int(page_cache_kib)}")  # negative: in KiB
            cursor.close()

        return engine
    # a server that does not answer (a host gone, not a port closed) fails a connection in
    # 5 s, not the system's TCP timeout: the usage service retries held events on its loop
    return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 5})


def alembic_config(url: str, migrations: Path = MIGRATIONS) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(migrations))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


# a PostgreSQL advisory lock's key: one upgrade at a time (two hub pods starting at once)
UPGRADE_LOCK = 0x7132_C0DE


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision` (`twoi2c-hub db upgrade`). Idempotent.
    A new, empty database is made at the latest schema in one step (Alembic's "create and
    stamp" recipe) rather than by every migration one after the other. Upgrades started at
    once (the usage and cost services, two hub pods) run one after the other, the later
    finding the work done."""
    with one_upgrade_at_a_time(url):
        if revision == "head" and _create_if_empty(url):
            return
        command.upgrade(alembic_config(url), revision)


def _create_if_empty(url: str) -> bool:
    """Make the latest schema in a database with no tables, and mark it as at the head
    revision; False (nothing done) if it has any table."""
    from .models import Base

    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            if inspect(connection).get_table_names():
                return False
            Base.metadata.create_all(connection)
    finally:
        engine.dispose()
    command.stamp(alembic_config(url), "head")
    return True


@contextmanager
def one_upgrade_at_a_time(url: str) -> Iterator[None]:
    """A PostgreSQL advisory lock; for an SQLite file, a lock on a file beside it."""
    if url.startswith("postgresql"):
        engine = make_engine(url)
        try:
            with engine.connect() as lock:
                lock.exec_driver_sql(f"SELECT pg_advisory_lock({UPGRADE_LOCK})")
                try:
                    yield
                finally:
                    lock.exec_driver_sql(f"SELECT pg_advisory_unlock({UPGRADE_LOCK})")
                    lock.commit()
        finally:
            engine.dispose()
        return
    database = make_url(url).database
    if not url.startswith("sqlite") or not database or database == ":memory:":
        yield
        return
    with open(f"{database}.upgrade-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def session_maker(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def one_snapshot(db: Session) -> Iterator[None]:
    """The reads inside see the database as of one moment, whatever commits meanwhile.

    A report reads the rollups and the sessions not yet rolled up in separate queries; a
    rollup committed between them (it adds a session to the rollups and marks it rolled up,
    in one transaction) would otherwise be read twice or not at all. SQLite: the reads run
    in one read transaction (pysqlite starts none for reads), ended on the way out unless
    the session had begun one. PostgreSQL: a session not yet begun reads at REPEATABLE READ
    for its transaction (one snapshot from its first query); one already begun goes on at
    its own level, so a report asked for in the middle of other work should start its own
    session. Nested use is the outer one's snapshot."""
    connection = db.connection(
        execution_options={"isolation_level": "REPEATABLE READ"}
        if not db.in_transaction() and db.get_bind().dialect.name == "postgresql"
        else None
    )
    if connection.dialect.name != "sqlite":
        yield
        return
    raw = connection.connection.driver_connection
    began = not raw.in_transaction
    if began:
        raw.execute("BEGIN")
    try:
        yield
    finally:
        if began and raw.in_transaction:
            raw.commit()  # only reads were made: this ends the snapshot


def in_one_snapshot(read: Callable) -> Callable:
    """`read(db, ...)` inside `one_snapshot(db)`."""

    @functools.wraps(read)
    def reading(db: Session, *args, **kwargs):
        with one_snapshot(db):
            return read(db, *args, **kwargs)

    return reading
