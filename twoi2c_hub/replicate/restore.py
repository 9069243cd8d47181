"""Reading an archive (archive.py) into a fresh accounting database.

The manifest is read first and the archive refused before anything is written when it
is of another kind, of a newer format or schema, or when the database already has data.
The rows are then loaded in one pass, each table checked against the manifest's count
and SHA-256 as it ends, inside one transaction: a truncated or tampered archive rolls
back and leaves the database empty, at the latest schema. The rows go in at the schema
revision they were written at, and the migrations bring them to the latest.

An archive is untrusted: every member, line and value is checked (checks.py, rows.py)
before it is written, and each refusal is one line saying what is wrong and where.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from sqlalchemy import create_engine, event, func, inspect, select, text
from sqlalchemy.engine import Connection

from ..accounting.db import make_engine, upgrade
from . import checks, hub_users, rows
from .archive import _CHUNK, CONFIG_MEMBER, MANIFEST, ArchiveError, accounting_tables, known_revisions
from .checks import MAX_LINE_BYTES, bounded, shown, size

# a compressed archive, by its first bytes: (the compression, how to undo it)
_COMPRESSED = {b"\x1f\x8b": ("gzip", "gunzip"), b"BZh": ("bzip2", "bunzip2"), b"\xfd7zXZ": ("xz", "unxz")}


@contextmanager
def _reading(archive: Path) -> Iterator[tarfile.TarFile]:
    """The archive as a tar read once, in order, in bounded memory; whatever goes wrong
    reading it said in one line."""
    if archive.is_dir():
        raise ArchiveError("a directory, not an archive file")
    try:
        file = open(archive, "rb")  # noqa: SIM115 (closed below)
    except OSError as e:
        raise ArchiveError(f"cannot be read ({e.strerror})") from None
    with file:
        start = file.read(8)
        for magic, (compression, tool) in _COMPRESSED.items():
            if start.startswith(magic):
                raise ArchiveError(f"compressed with {compression}: an archive is a plain tar, decompress it ({tool})")
        file.seek(0)
        try:
            tar = tarfile.open(fileobj=file, mode="r|", tarinfo=checks.BoundedTarInfo)
        except tarfile.TarError as e:
            raise ArchiveError(f"not a tar archive ({e})") from None
        try:
            with tar:
                yield tar
        except (tarfile.TarError, EOFError, RecursionError) as e:  # a header chain past Python's recursion
            raise ArchiveError(f"the archive is damaged or truncated ({e}); nothing was imported") from None


def _manifest(tar: tarfile.TarFile, revisions: list[str]) -> dict[str, Any]:
    first = tar.next()
    if first is None or first.name != MANIFEST:
        raise ArchiveError(f"not a twoi2c-hub archive: its first member is not {MANIFEST}")
    checks.regular(first)
    bounded(MANIFEST, first.size, checks.MAX_MANIFEST_BYTES, "a manifest")
    return checks.manifest(tar.extractfile(first).read(), revisions)


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


def _batches(lines: IO[bytes], name: str) -> Iterator[tuple[bytes, list, int]]:
    """(raw bytes, rows, the first row's line number) about a megabyte at a time: the
    lines parsed as one JSON array. Reads of at most MAX_LINE_BYTES: a line longer than
    that is refused as soon as it is (each line but the first of a read lies inside it)."""
    rest, line = b"", 1
    while chunk := lines.read(min(_CHUNK, MAX_LINE_BYTES)):
        data = rest + chunk
        cut = data.rfind(b"\n") + 1
        rest, ended = data[cut:], data.count(b"\n")
        for number, length in ((line, data.find(b"\n")), (line + ended, len(rest))):
            if length > MAX_LINE_BYTES:
                raise ArchiveError(f"{name} line {number} is over the limit of {size(MAX_LINE_BYTES)} for a line")
        if ended:
            yield data[:cut], _parsed(data[:cut], name, line), line
            line += ended
    if rest:
        raise ArchiveError(f"{name}: its last line is cut short")


def _parsed(data: bytes, name: str, first_line: int) -> list:
    """The lines of `data` as a list of rows, one JSON value a line."""
    try:
        parsed = json.loads(b"[" + data[:-1].replace(b"\n", b",") + b"]")
        if len(parsed) == data.count(b"\n"):  # not "[1],[2]" on one line
            return parsed
    except (ValueError, RecursionError):
        pass
    for number, line in enumerate(data[:-1].split(b"\n"), first_line):  # which line is wrong, to say so
        checks.parsed(line, f"{name} line {number}")
    raise ArchiveError(f"{name} lines {first_line} on: not JSON lines")


def _load_member(connection: Connection, table, member: dict, lines: IO[bytes]) -> None:
    sql = _insert_sql(connection, table, member["columns"])
    cursor = connection.connection.driver_connection.cursor()
    check = rows.row_check(table, member["columns"], member["name"])
    refused = (connection.dialect.loaded_dbapi.IntegrityError, connection.dialect.loaded_dbapi.DataError)
    digest, count = hashlib.sha256(), 0
    for data, batch, first_line in _batches(lines, member["name"]):
        digest.update(data)
        check(batch, first_line)
        try:
            cursor.executemany(sql, batch)
        except refused as e:  # a key twice, a row of no parent
            problem = " ".join(str(e).split())
            raise ArchiveError(
                f"{member['name']}: the database refuses its rows ({problem}); nothing was imported"
            ) from None
        count += len(batch)
    if count != member["rows"] or digest.hexdigest() != member["sha256"]:
        raise ArchiveError(
            f"{member['name']}: {count} rows that do not match the manifest ({shown(member['rows'])} rows, its "
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


def _read_whole(tar: tarfile.TarFile, info: tarfile.TarInfo, entry: dict, limit: int, what: str) -> bytes:
    """A member read into memory: the config, the hub's people."""
    bounded(info.name, info.size, limit, what)
    data = tar.extractfile(info).read()
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise ArchiveError(f"{info.name} does not match the manifest's checksum")
    return data


def _load_all(connection: Connection, tar: tarfile.TarFile, manifest: dict) -> tuple[bytes | None, dict]:
    """Every member into its table, the indexes built after the rows (as a dump loads);
    returns the archived config and the hub's people and groups (checked, not written)."""
    tables = {table.name: table for table in accounting_tables(connection)}
    checks.table_columns(manifest, tables)
    listed = {m["name"]: m for m in [*manifest["tables"], *manifest.get("hub", [])]}
    if "config" in manifest:
        listed[CONFIG_MEMBER] = manifest["config"]
    read, hub_members, config_bytes = {MANIFEST}, {}, None
    indexes = [index for table in tables.values() for index in table.indexes]
    for index in indexes:
        index.drop(connection)
    members = iter(tar)
    next(members)  # the manifest, read already
    for info in members:
        entry = listed.pop(info.name, None)
        if entry is None:
            where = "is in the archive twice" if info.name in read else "is a member the manifest does not list"
            raise ArchiveError(f"{info.name!r} {where}")
        read.add(info.name)
        checks.regular(info)
        if info.name == CONFIG_MEMBER:
            config_bytes = _read_whole(tar, info, entry, checks.MAX_CONFIG_BYTES, "the config")
        elif info.name in (hub_users.GROUPS, hub_users.USERS):
            hub_members[info.name] = _read_whole(tar, info, entry, checks.MAX_HUB_MEMBER_BYTES, "a hub member")
        else:
            bounded(info.name, info.size, checks.MAX_TABLE_BYTES, "a table")
            _load_member(connection, tables[entry["table"]], entry, tar.extractfile(info))
    if listed:
        raise ArchiveError(f"the archive ends early: {', '.join(sorted(listed))} missing (truncated?)")
    rows.hub_rows(hub_members)
    for index in indexes:
        index.create(connection)
    _reset_sequences(connection, tables.values())
    return config_bytes, hub_members


def _load(tar: tarfile.TarFile, manifest: dict, database_url: str) -> tuple[bytes | None, dict]:
    """The rows into the empty database at `database_url`, all or none."""
    upgrade(database_url)  # a fresh install is at the latest schema, empty
    engine = _bulk_engine(database_url)
    started = loaded = False
    try:
        with engine.connect() as connection:
            found = existing_rows(connection)
        if found:
            counts = ", ".join(f"{n} {t}" for t, n in sorted(found.items()))
            raise ArchiveError(f"the database already has data ({counts}): import into a new, empty database")
        started = True
        _empty_at(database_url, manifest["schema_revision"])
        with engine.begin() as connection:
            loaded_members = _load_all(connection, tar, manifest)
        loaded = True
        return loaded_members
    finally:
        engine.dispose()
        if started and not loaded:
            # the rows were rolled back; the schema (SQLite runs DDL outside the transaction)
            # is made afresh, so the database is as a new install's
            _empty_at(database_url, "head")
        upgrade(database_url)  # the rows (or an empty database) at the latest schema


def restore(
    archive: Path, database_url: str, config_out: Path | None = None, hub_db_url: str | None = None
) -> dict[str, Any]:
    """Load `archive` into the empty database at `database_url`; its config to `config_out`;
    the hub's people and groups into JupyterHub's database at `hub_db_url`. Nothing is
    written before the manifest is read and checked."""
    if config_out is not None and Path(config_out).exists():
        raise ArchiveError(f"{config_out} exists: give a new path for the archived config")
    if hub_db_url is not None:
        hub_users.reachable(hub_db_url)  # before any row goes in: the people must be able to follow
    with _reading(Path(archive)) as tar:
        manifest = _manifest(tar, known_revisions(database_url))
        config_bytes, hub_members = _load(tar, manifest, database_url)
    if config_out is not None and config_bytes is not None:
        Path(config_out).write_bytes(config_bytes)
    if hub_db_url is not None and hub_members:
        manifest["hub_users_imported"] = hub_users.write(hub_db_url, hub_members)
    return manifest
