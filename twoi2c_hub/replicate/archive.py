"""A whole hub's history as one archive, written and read as streams ("Right to Replicate").

The format (version 1), documented in docs/replicate.md:

- an uncompressed tar whose first member is `manifest.json`: the format and its version,
  the accounting schema revision the rows belong to, the producer, and for every other
  member its name, row count, columns and SHA-256;
- `community.yaml`: the community config, secrets left out (`manifest["secrets"]` lists
  what was removed, by setting and environment variable name);
- `tables/<table>.jsonl`: one JSON array per line, the table's columns in the manifest's
  order, rows in primary-key order; every table of the accounting database (sessions and
  their groups, dated group memberships, the rollups, the budget ledger and notices,
  imported bills, home storage).

Export streams each table from the database straight into the tar (tarstream: the
header is written after the data, the manifest filled in last), the rows rendered as
JSON by the database itself; import reads the tar in one pass and loads each table a
megabyte at a time inside one transaction. Memory stays bounded whatever the history's
size, and a refused or broken archive leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Boolean, Float, MetaData, inspect, select
from sqlalchemy.engine import Connection, make_url

from ..accounting.db import alembic_config, make_engine
from . import hub_users
from .tarstream import TarWriter

FORMAT = "twoi2c-hub-archive"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CONFIG_MEMBER = "community.yaml"
TABLES = "tables/"
BATCH = 5000
_CHUNK = 1 << 20


class ArchiveError(Exception):
    """An archive that cannot be written or read, with what to do about it."""


def _producer() -> str:
    from importlib.metadata import version

    return f"twoi2c-hub {version('twoi2c-hub')}"


def schema_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def known_revisions(url: str) -> list[str]:
    """The accounting schema's revisions, oldest first."""
    script = ScriptDirectory.from_config(alembic_config(url))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def accounting_tables(connection: Connection) -> list:
    """The accounting tables as they are in this database, parents before children."""
    metadata = MetaData()
    metadata.reflect(connection, only=[t for t in inspect(connection).get_table_names() if t != "alembic_version"])
    return metadata.sorted_tables


# --- export ---------------------------------------------------------------------------


def _json_rows_sql(connection: Connection, table) -> str | None:
    """A query whose one column is each row as its JSON line, rendered by the database
    (C speed; exact: floats with 17 significant digits, booleans as true/false); None
    where the database cannot (the rows are then encoded here)."""
    quote = connection.dialect.identifier_preparer.quote
    order = ", ".join(quote(c.name) for c in (list(table.primary_key.columns) or list(table.columns)))
    parts = []
    for column in table.columns:
        name = quote(column.name)
        if connection.dialect.name == "sqlite" and isinstance(column.type, Boolean):
            parts.append(f"CASE WHEN {name} IS NULL THEN NULL WHEN {name} THEN json('true') ELSE json('false') END")
        elif connection.dialect.name == "sqlite" and isinstance(column.type, Float):
            parts.append(f"CASE WHEN {name} IS NULL THEN NULL ELSE json(printf('%!.17g', {name})) END")
        else:
            parts.append(name)
    rendered = {
        "sqlite": f"json_array({', '.join(parts)})",
        # PostgreSQL writes float8 in its shortest exact form (extra_float_digits = 1)
        "postgresql": f"json_build_array({', '.join(parts)})::text",
    }.get(connection.dialect.name)
    if rendered is None:
        return None
    return f"SELECT {rendered} FROM {quote(table.name)} ORDER BY {order}"


def _lines(connection: Connection, table) -> Iterator[list[str]]:
    """The table's rows as JSON lines, a batch at a time."""
    sql = _json_rows_sql(connection, table)
    if sql is not None:
        # the driver's own cursor (a server-side one on PostgreSQL): strings, no Row objects
        driver = connection.connection.driver_connection
        cursor = driver.cursor(name="twoi2c_export") if connection.dialect.name == "postgresql" else driver.cursor()
        try:
            cursor.execute(sql)
            while batch := cursor.fetchmany(BATCH):
                yield [row[0] for row in batch]
        finally:
            cursor.close()
        return
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    booleans = [i for i, c in enumerate(table.columns) if isinstance(c.type, Boolean)]
    order = list(table.primary_key.columns) or list(table.columns)
    result = connection.execution_options(stream_results=True, yield_per=BATCH).execute(
        select(*table.columns).order_by(*order)
    )
    for partition in result.partitions(BATCH):
        batch = []
        for row in partition:
            values = list(row)
            for i in booleans:
                if values[i] is not None:
                    values[i] = bool(values[i])
            batch.append(dumps(values))
        yield batch


def _write_table(connection: Connection, table, out: IO[bytes]) -> tuple[int, str]:
    digest, count = hashlib.sha256(), 0
    for lines in _lines(connection, table):
        chunk = ("\n".join(lines) + "\n").encode()
        digest.update(chunk)
        out.write(chunk)
        count += len(lines)
    return count, digest.hexdigest()


MANIFEST_ROOM = 256 * 1024  # far more than the manifest of a few dozen tables needs


def export(database_url: str, config_text: str | None, out: Path, hub_db_url: str | None = None) -> dict[str, Any]:
    """Write the archive of the database at `database_url` (and the config, redacted; and
    the hub's people and groups from JupyterHub's database at `hub_db_url`) to `out`,
    through `out`.partial renamed at the end: a failed export leaves no archive. One
    pass: each table streams from the database into the tar."""
    from .secrets import redacted

    engine = make_engine(database_url)
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "producer": _producer(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": engine.dialect.name,
        "secrets": [],
    }
    try:
        with open(partial, "wb") as file:
            tar = TarWriter(file)
            manifest_at = tar.reserve(MANIFEST, MANIFEST_ROOM)
            if config_text is not None:
                config_out, manifest["secrets"] = redacted(config_text)
                config_bytes = config_out.encode()
                manifest["config"] = {"name": CONFIG_MEMBER, "sha256": hashlib.sha256(config_bytes).hexdigest()}
                tar.add(CONFIG_MEMBER, config_bytes)
            if hub_db_url is not None:
                manifest["hub"] = []
                for name, data in hub_users.read(hub_db_url).items():
                    tar.add(name, data)
                    manifest["hub"].append({"name": name, "rows": data.count(b"\n"),
                                            "sha256": hashlib.sha256(data).hexdigest()})  # fmt: skip
            with engine.connect() as connection:
                if connection.dialect.name == "postgresql":  # floats exact whatever the server's setting
                    connection.exec_driver_sql("SET extra_float_digits = 1")
                manifest["schema_revision"] = schema_revision(connection)
                if manifest["schema_revision"] is None:
                    shown = make_url(database_url).render_as_string(hide_password=True)
                    raise ArchiveError(f"{shown}: no accounting database here (run twoi2c-hub db upgrade)")
                manifest["tables"] = []
                for table in accounting_tables(connection):
                    name = f"{TABLES}{table.name}.jsonl"
                    with tar.member(name) as lines:
                        rows, sha = _write_table(connection, table, lines)
                    columns = [c.name for c in table.columns]
                    manifest["tables"].append({"name": name, "table": table.name, "rows": rows,
                                               "columns": columns, "sha256": sha})  # fmt: skip
            tar.fill(manifest_at, json.dumps(manifest, indent=2).encode(), MANIFEST_ROOM)
            tar.close()
        os.replace(partial, out)
        return manifest
    finally:
        engine.dispose()
        partial.unlink(missing_ok=True)
