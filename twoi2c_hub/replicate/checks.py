"""What an archive to import may hold, checked before anything of it is written.

An archive is untrusted input: a file from another operator, or from anyone. Its limits
are named here; a refusal says in one line what is wrong, where, and which limit; and
reading stays in bounded memory whatever the file holds. docs/security.md lists each
limit with the test that holds it.
"""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Callable
from typing import Any

from .archive import CONFIG_MEMBER, FORMAT, FORMAT_VERSION, MANIFEST, TABLES, ArchiveError
from .hub_users import GROUPS, USERS

MAX_MANIFEST_BYTES = 1 << 20  # the manifest of 17 tables is 5 KiB (written padded to 256 KiB)
MAX_JSON_DEPTH = 16  # the manifest nests 4 deep, a row is a flat array
MAX_MEMBERS = 64  # members the manifest lists: 17 tables, the hub's 2 and the config today
MAX_LINE_BYTES = 1 << 20  # one row or person (a session with its choices: under 1 KiB)
MAX_TABLE_BYTES = 64 << 30  # one table, streamed (1,000,000 sessions: 300 MB)
MAX_CONFIG_BYTES = 1 << 20  # community.yaml, read whole
MAX_HUB_MEMBER_BYTES = 32 << 20  # hub/users.jsonl, read whole: about 200,000 people
MAX_EXTENDED_HEADER_BYTES = 64 << 10  # a pax or GNU long-name tar header, which tarfile reads whole
MAX_NAME_CHARS = 255  # a person's or group's name in the hub (JupyterHub's column)


def size(count: int) -> str:
    """A number of bytes as a limit is written: 1 MiB, 64 KiB, 100 bytes."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if count >= 1 << shift and count % (1 << shift) == 0:
            return f"{count >> shift} {unit}"
    return f"{count:,} bytes"


def bounded(name: str, count: int, limit: int, what: str) -> None:
    if count > limit:
        raise ArchiveError(f"{name} is {count:,} bytes, over the limit of {size(limit)} for {what}")


def shown(value: Any) -> str:
    """A value of the archive as its JSON, shortened, escaped to ASCII: one line."""
    text = json.dumps(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


# --- the tar ----------------------------------------------------------------------------

_EXTENDED = (
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
)
_KINDS = {
    tarfile.SYMTYPE: "a symbolic link",
    tarfile.LNKTYPE: "a hard link",
    tarfile.DIRTYPE: "a directory",
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a FIFO",
}


class BoundedTarInfo(tarfile.TarInfo):
    """A tar header, refused when it is an extended header (pax, GNU long name) longer
    than MAX_EXTENDED_HEADER_BYTES: tarfile reads those whole into memory."""

    @classmethod
    def frombuf(cls, buf: bytes, encoding: str, errors: str) -> tarfile.TarInfo:
        info = super().frombuf(buf, encoding, errors)
        if info.type in _EXTENDED and info.size > MAX_EXTENDED_HEADER_BYTES:
            raise ArchiveError(
                f"an extended tar header (pax or GNU) of {info.size:,} bytes, over the limit of "
                f"{size(MAX_EXTENDED_HEADER_BYTES)}"
            )
        return info


def regular(info: tarfile.TarInfo) -> None:
    """A member is a file, never a link, directory or device."""
    if info.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
        raise ArchiveError(
            f"{info.name!r} is {_KINDS.get(info.type, f'of tar type {info.type!r}')}, not a regular file"
        )


# --- JSON and the manifest --------------------------------------------------------------


def _depth(value: Any) -> int:
    """How many arrays and objects deep `value` nests."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            stack += [(item, level + 1) for item in (node.values() if isinstance(node, dict) else node)]
    return deepest


def parsed(data: bytes, where: str) -> Any:
    """`data` as JSON nested at most MAX_JSON_DEPTH deep."""
    try:
        value = json.loads(data)
    except RecursionError:
        value = too_deep = True
    except ValueError as e:  # UnicodeDecodeError too
        raise ArchiveError(f"{where}: not JSON ({e})") from None
    else:
        too_deep = _depth(value) > MAX_JSON_DEPTH
    if too_deep:
        raise ArchiveError(f"{where}: nested deeper than {MAX_JSON_DEPTH} levels, the limit")
    return value


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _field(entry: dict, key: str, where: str, expected: str, ok: Callable[[Any], Any]) -> Any:
    """`entry[key]`, when `ok` of it."""
    value = entry.get(key)
    if not ok(value):
        found = shown(value) if key in entry else "missing"
        raise ArchiveError(f"{MANIFEST}: {where}{key} must be {expected}, not {found}")
    return value


def _entries(manifest: dict, key: str) -> list[dict]:
    """The list of objects `manifest[key]`."""
    entries = _field(manifest, key, "", "a list of objects", lambda v: isinstance(v, list))
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ArchiveError(f"{MANIFEST}: {key}[{i}] must be an object, not {shown(entry)}")
    return entries


def _is_text(pattern: re.Pattern) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, str) and bool(pattern.fullmatch(value))


# what each entry of the manifest's lists holds: key -> (in words, whether a value is that)
_COUNT = ("a whole number from 0", lambda v: _whole(v) and v >= 0)
_SHA256 = ("a SHA-256 in hex", _is_text(re.compile(r"[0-9a-f]{64}")))
_ENTRIES = {
    "secrets": {
        "setting": ("a setting's name", lambda v: isinstance(v, str) and 0 < len(v) <= 300 and v.isprintable())
    },
    "hub": {"name": (f"{GROUPS!r} or {USERS!r}", lambda v: v in (GROUPS, USERS)), "rows": _COUNT, "sha256": _SHA256},
    "tables": {
        "table": ("a table name (a-z, 0-9, _)", _is_text(re.compile(r"[a-z_][a-z0-9_]{0,62}"))),
        "rows": _COUNT,
        "columns": (
            "a list of column names",
            lambda v: isinstance(v, list) and v and all(isinstance(c, str) for c in v),
        ),
        "sha256": _SHA256,
    },
}


def manifest(data: bytes, revisions: list[str]) -> dict[str, Any]:
    """The manifest, every field it has checked; the tables and columns are checked
    against the schema by `table_columns`."""
    manifest = parsed(data, MANIFEST)
    if not isinstance(manifest, dict):
        raise ArchiveError(f"{MANIFEST}: not a JSON object")
    if manifest.get("format") != FORMAT:
        raise ArchiveError(f"not a twoi2c-hub archive (its format is {shown(manifest.get('format'))})")
    version = _field(manifest, "format_version", "", "a whole number from 1", lambda v: _whole(v) and v >= 1)
    if version > FORMAT_VERSION:
        raise ArchiveError(
            f"this archive is in format version {version}, written by a newer twoi2c-hub "
            f"({shown(manifest.get('producer'))}); this one reads up to version {FORMAT_VERSION}: upgrade twoi2c-hub"
        )
    example = f"a revision name such as {revisions[-1]!r}"
    revision = _field(manifest, "schema_revision", "", example, _is_text(re.compile(r"[0-9a-z_]{1,32}")))
    if revision not in revisions:
        raise ArchiveError(
            f"the archive's database schema ({revision}) is newer than this twoi2c-hub knows: upgrade twoi2c-hub"
        )
    names = []
    for key, fields in _ENTRIES.items():
        if key == "hub" and key not in manifest:  # exported without the hub's people
            continue
        for i, entry in enumerate(_entries(manifest, key)):
            for field, (expected, ok) in fields.items():
                _field(entry, field, f"{key}[{i}].", expected, ok)
            if key == "tables":
                name = f"{TABLES}{entry['table']}.jsonl"
                _field(entry, "name", f"tables[{i}].", repr(name), lambda v, name=name: v == name)
            names += [entry["name"]] if key != "secrets" else []
    if "config" in manifest:
        config = _field(manifest, "config", "", "an object", lambda v: isinstance(v, dict))
        _field(config, "name", "config.", repr(CONFIG_MEMBER), lambda v: v == CONFIG_MEMBER)
        _field(config, "sha256", "config.", *_SHA256)
        names.append(CONFIG_MEMBER)
    if len(names) > MAX_MEMBERS:
        raise ArchiveError(f"{MANIFEST} lists {len(names)} members, over the limit of {MAX_MEMBERS}")
    if len(set(names)) < len(names):
        raise ArchiveError(f"{MANIFEST} lists {next(n for n in names if names.count(n) > 1)} twice")
    return manifest


def table_columns(manifest: dict[str, Any], tables: dict) -> None:
    """Each table the manifest lists is one of the schema's, with exactly its columns."""
    for i, entry in enumerate(manifest["tables"]):
        where = f"{MANIFEST}: tables[{i}]"
        table = tables.get(entry["table"])
        if table is None:
            raise ArchiveError(
                f"{where}.table {shown(entry['table'])} is not a table of the accounting schema "
                f"(revision {manifest['schema_revision']})"
            )
        columns = entry["columns"]
        for column in columns:
            if column not in table.columns:
                raise ArchiveError(f"{where}.columns: {shown(column)} is not a column of {table.name}")
            if columns.count(column) > 1:
                raise ArchiveError(f"{where}.columns lists {shown(column)} twice")
        for column in table.columns.keys():
            if column not in columns:
                raise ArchiveError(f"{where}.columns misses {shown(column)}, a column of {table.name}")
