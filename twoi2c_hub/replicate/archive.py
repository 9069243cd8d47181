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

Export streams each table through a temporary file (to know its size and checksum before
it goes into the tar); import reads the tar in one pass and loads each table in batches
inside one transaction, so memory stays bounded whatever the history's size, and a
refused or broken archive leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Boolean, MetaData, inspect, select
from sqlalchemy.engine import Connection

from ..accounting.db import alembic_config, make_engine

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


def _rows(connection: Connection, table) -> Iterator[list]:
    booleans = [i for i, c in enumerate(table.columns) if isinstance(c.type, Boolean)]
    order = list(table.primary_key.columns) or list(table.columns)
    result = connection.execution_options(stream_results=True, yield_per=BATCH).execute(
        select(*table.columns).order_by(*order)
    )
    for partition in result.partitions(BATCH):
        for row in partition:
            values = list(row)
            for i in booleans:  # SQLite keeps 0/1: written as JSON booleans everywhere
                if values[i] is not None:
                    values[i] = bool(values[i])
            yield values


def _write_table(connection: Connection, table, out: IO[bytes]) -> tuple[int, str]:
    digest, count, dumps = hashlib.sha256(), 0, json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    lines: list[str] = []
    for values in _rows(connection, table):
        lines.append(dumps(values))
        count += 1
        if len(lines) == BATCH:
            chunk = ("\n".join(lines) + "\n").encode()
            digest.update(chunk)
            out.write(chunk)
            lines = []
    if lines:
        chunk = ("\n".join(lines) + "\n").encode()
        digest.update(chunk)
        out.write(chunk)
    return count, digest.hexdigest()


def _add(tar: tarfile.TarFile, name: str, source: IO[bytes], size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, int(time.time()), 0o644
    tar.addfile(info, source)


def export(database_url: str, config_text: str | None, out: Path) -> dict[str, Any]:
    """Write the archive of the database at `database_url` (and the config, redacted) to
    `out`, through `out`.partial renamed at the end: a failed export leaves no archive."""
    from .secrets import redacted

    engine = make_engine(database_url)
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    try:
        with tempfile.TemporaryDirectory(prefix="twoi2c-export-", dir=out.parent) as work:
            with engine.connect() as connection:
                revision = schema_revision(connection)
                if revision is None:
                    raise ArchiveError(f"{database_url}: no accounting database here (run twoi2c-hub db upgrade)")
                members = []
                for table in accounting_tables(connection):
                    path = Path(work) / f"{table.name}.jsonl"
                    with open(path, "wb") as lines:
                        rows, sha = _write_table(connection, table, lines)
                    columns = [c.name for c in table.columns]
                    members.append({"name": TABLES + path.name, "table": table.name, "rows": rows,
                                    "columns": columns, "sha256": sha, "size": path.stat().st_size})  # fmt: skip
            manifest: dict[str, Any] = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "producer": _producer(),
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "schema_revision": revision,
                "database": engine.dialect.name,
                "tables": members,
                "secrets": [],
            }
            config_bytes = b""
            if config_text is not None:
                config_out, manifest["secrets"] = redacted(config_text)
                config_bytes = config_out.encode()
                manifest["config"] = {"name": CONFIG_MEMBER, "sha256": hashlib.sha256(config_bytes).hexdigest()}
            head = json.dumps(manifest, indent=2).encode()
            with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
                _add(tar, MANIFEST, io.BytesIO(head), len(head))
                if config_text is not None:
                    _add(tar, CONFIG_MEMBER, io.BytesIO(config_bytes), len(config_bytes))
                for member in members:
                    with open(Path(work) / member["name"].removeprefix(TABLES), "rb") as lines:
                        _add(tar, member["name"], lines, member["size"])
            os.replace(partial, out)
            return manifest
    finally:
        engine.dispose()
        partial.unlink(missing_ok=True)
