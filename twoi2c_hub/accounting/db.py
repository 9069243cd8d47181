"""The accounting database: one URL (SQLite in WAL mode by default, or PostgreSQL),
its schema managed by the Alembic migrations shipped in this package."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and foreign keys."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_settings(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(url: str) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


# a PostgreSQL advisory lock's key: one upgrade at a time (two hub pods starting at once)
UPGRADE_LOCK = 0x7132_C0DE


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision` (`twoi2c-hub db upgrade`). Idempotent;
    on PostgreSQL, upgrades started at once run one after the other (an advisory lock),
    the later finding the work done."""
    if not url.startswith("postgresql"):
        command.upgrade(alembic_config(url), revision)
        return
    engine = make_engine(url)
    try:
        with engine.connect() as lock:
            lock.exec_driver_sql(f"SELECT pg_advisory_lock({UPGRADE_LOCK})")
            try:
                command.upgrade(alembic_config(url), revision)
            finally:
                lock.exec_driver_sql(f"SELECT pg_advisory_unlock({UPGRADE_LOCK})")
                lock.commit()
    finally:
        engine.dispose()


def session_maker(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)
