"""Reading an archive (archive.py) into a fresh accounting database.

The manifest is read first and the archive refused before anything is written when it
is of another kind, of a newer format or schema, or when the database already has data.
The rows are then loaded in one pass, each table checked against the manifest's count
and SHA-256 as it ends, inside one transaction: a truncated or tampered archive rolls
back and leaves the database empty, at the latest schema. The rows go in at the schema
revision they were written at, and the migrations bring them to the latest.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from sqlalchemy import MetaData, create_engine, event, func, inspect, select, text
from sqlalchemy.engine import Connection

from ..accounting.db import make_engine, upgrade
from . import hub_users
from .archive import (
    _CHUNK,
    CONFIG_MEMBER,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    ArchiveError,
    accounting_tables,
    known_revisions,
)


def _manifest(tar: tarfile.TarFile) -> dict[str, Any]:
    first = tar.next()
    if first is None or first.name != MANIFEST:
        raise ArchiveError(f"not a twoi2c-hub archive: its first member is not {MANIFEST}")
    try:
        manifest = json.load(tar.extractfile(first))
    except ValueError as e:
        raise ArchiveError(f"{MANIFEST} is not JSON: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveError(f"not a twoi2c-hub archive (format {manifest.get('format')!r})")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ArchiveError(
            f"this archive is in format version {version}, written by a newer twoi2c-hub "
            f"({manifest.get('producer')}); this one reads up to version {FORMAT_VERSION}: upgrade twoi2c-hub"
        )
    return manifest


def existing_rows(connection: Connection) -> dict[str, int]:
    """Rows in each accounting table that has any."""
    counts = {}
    for table in accounting_tables(connection):
        count = connection.execute(select(func.count()).select_from(table)).scalar_one()
        if count:
            counts[table.name] = count
    return counts


def _empty_at(url: str, revision: str) -> None:
    """Make the (empty) database's schema the archive's revision."""
    engine = make_engine(url)
    with engine.begin() as connection:
        if existing_rows(connection):  # checked by the caller; kept as a guard
            raise ArchiveError("the database has data")
        for table in reversed(accounting_tables(connection)):
            table.drop(connection)
        if inspect(connection).has_table("alembic_version"):
            connection.execute(text("DROP TABLE alembic_version"))
    engine.dispose()
    upgrade(url, revision)


def _insert_sql(connection: Connection, table, columns: list[str]) -> str:
    marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    quote = connection.dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in columns)
    return f"INSERT INTO {quote(table.name)} ({names}) VALUES ({', '.join([marker] * len(columns))})"


def _batches(lines: IO[bytes], name: str) -> Iterator[tuple[bytes, list]]:
    """(raw bytes, rows) about a megabyte at a time: the lines parsed as one JSON array."""
    rest = b""
    while True:
        chunk = lines.read(_CHUNK)
        if not chunk:
            break
        data = rest + chunk
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            rest = data
            continue
        rest = data[cut:]
        yield data[:cut], _parsed(data[:cut], name)
    if rest:
        raise ArchiveError(f"{name}: its last line is cut short")


def _parsed(data: bytes, name: str) -> list:
    try:
        return json.loads(b"[" + data[:-1].replace(b"\n", b",") + b"]")
    except ValueError as e:
        raise ArchiveError(f"{name}: not JSON lines ({e})") from None


def _load_member(connection: Connection, table, member: dict, lines: IO[bytes]) -> None:
    sql = _insert_sql(connection, table, member["columns"])
    cursor = connection.connection.driver_connection.cursor()
    digest, count, width = hashlib.sha256(), 0, len(member["columns"])
    for data, rows in _batches(lines, member["name"]):
        digest.update(data)
        if not all(isinstance(row, list) and len(row) == width for row in rows):
            raise ArchiveError(f"{member['name']}: a line that is not an array of its {width} columns")
        cursor.executemany(sql, rows)
        count += len(rows)
    if count != member["rows"] or digest.hexdigest() != member["sha256"]:
        raise ArchiveError(
            f"{member['name']}: {count} rows that do not match the manifest ({member['rows']} rows, its "
            "checksum): the archive was changed or damaged after it was written; nothing was imported"
        )


def _reset_sequences(connection: Connection, tables) -> None:
    """PostgreSQL: the next id after the imported ones."""
    if connection.dialect.name != "postgresql":
        return
    for table in tables:
        if "id" in table.columns and table.columns["id"].primary_key:
            connection.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                    f"COALESCE((SELECT MAX(id) FROM {table.name}), 1), "
                    f"(SELECT MAX(id) FROM {table.name}) IS NOT NULL)"
                )
            )


def _bulk_engine(url: str):
    """An engine for loading: on SQLite, a rollback journal instead of the write-ahead log
    (a fresh database's new pages need no journal; a log would write them all twice) and
    a larger page cache; WAL comes back with the next `make_engine`."""
    if not url.startswith("sqlite"):
        return make_engine(url)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _settings(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        for pragma in ("journal_mode=DELETE", "synchronous=NORMAL", "foreign_keys=ON", "cache_size=-32768"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    return engine


def _load_all(connection: Connection, tar: tarfile.TarFile, manifest: dict) -> tuple[bytes | None, dict]:
    """Every member into its table, the indexes built after the rows (as a dump loads);
    returns the archived config and the hub's people and groups (checked, not written)."""
    expected = {m["name"]: m for m in manifest["tables"]}
    hub = {m["name"]: m for m in manifest.get("hub", [])}
    hub_members: dict[str, bytes] = {}
    config_bytes = None
    metadata = MetaData()
    metadata.reflect(connection)
    indexes = [index for table in metadata.sorted_tables for index in table.indexes]
    for index in indexes:
        index.drop(connection)
    for info in tar:  # (the manifest, read already, comes first again)
        if info.name == MANIFEST:
            continue
        if info.name == CONFIG_MEMBER and "config" in manifest:
            config_bytes = tar.extractfile(info).read()
            if hashlib.sha256(config_bytes).hexdigest() != manifest["config"]["sha256"]:
                raise ArchiveError(f"{CONFIG_MEMBER} does not match the manifest's checksum")
            continue
        if info.name in hub:
            data = tar.extractfile(info).read()
            if hashlib.sha256(data).hexdigest() != hub.pop(info.name)["sha256"]:
                raise ArchiveError(f"{info.name} does not match the manifest's checksum")
            hub_members[info.name] = data
            continue
        member = expected.pop(info.name, None)
        if member is None or member["table"] not in metadata.tables:
            raise ArchiveError(f"{info.name}: not in the manifest, or not a table of this schema")
        table = metadata.tables[member["table"]]
        if set(member["columns"]) != set(table.columns.keys()):
            raise ArchiveError(f"{info.name}: its columns are not those of {table.name}")
        _load_member(connection, table, member, tar.extractfile(info))
    if expected or hub:
        missing = ", ".join(sorted([*expected, *hub]))
        raise ArchiveError(f"the archive ends early: {missing} missing (truncated?)")
    if "config" in manifest and config_bytes is None:
        raise ArchiveError(f"the archive ends early: {CONFIG_MEMBER} missing")
    for index in indexes:
        index.create(connection)
    _reset_sequences(connection, metadata.sorted_tables)
    return config_bytes, hub_members


def restore(
    archive: Path, database_url: str, config_out: Path | None = None, hub_db_url: str | None = None
) -> dict[str, Any]:
    """Load `archive` into the empty database at `database_url`; its config to `config_out`;
    the hub's people and groups into JupyterHub's database at `hub_db_url`."""
    if config_out is not None and Path(config_out).exists():
        raise ArchiveError(f"{config_out} exists: give a new path for the archived config")
    try:
        tar = tarfile.open(archive, "r|")  # one pass, in order, in bounded memory
    except (OSError, tarfile.TarError) as e:
        raise ArchiveError(f"{archive}: not a readable archive ({e})") from None
    upgrade(database_url)  # a fresh install is at the latest schema, empty
    engine = _bulk_engine(database_url)
    started = loaded = False
    try:
        with tar:
            manifest = _manifest(tar)
            if manifest.get("schema_revision") not in known_revisions(database_url):
                raise ArchiveError(
                    f"the archive's database schema ({manifest.get('schema_revision')}) is newer than this "
                    "twoi2c-hub knows: upgrade twoi2c-hub"
                )
            with engine.connect() as connection:
                found = existing_rows(connection)
            if found:
                counts = ", ".join(f"{n} {t}" for t, n in sorted(found.items()))
                raise ArchiveError(f"the database already has data ({counts}): import into a new, empty database")
            started = True
            _empty_at(database_url, manifest["schema_revision"])
            with engine.begin() as connection:
                config_bytes, hub_members = _load_all(connection, tar, manifest)
            loaded = True
    except (tarfile.TarError, EOFError, OSError) as e:
        raise ArchiveError(f"{archive}: the archive is damaged or truncated ({e}); nothing was imported") from None
    finally:
        engine.dispose()
        if started and not loaded:
            # the rows were rolled back; the schema (SQLite runs DDL outside the transaction)
            # is made afresh, so the database is as a new install's
            _empty_at(database_url, "head")
        upgrade(database_url)  # the rows (or an empty database) at the latest schema
    if config_out is not None and config_bytes is not None:
        Path(config_out).write_bytes(config_bytes)
    if hub_db_url is not None and hub_members:
        manifest["hub_users_imported"] = hub_users.write(hub_db_url, hub_members)
    return manifest
