"""Hostile archives given to `twoi2c-hub import` (issue 22, round two): each is refused in
one line on stderr that says what is wrong (never a traceback), in bounded time and
memory, and nothing is written: no row, no half import, no extracted config, no people
in the hub's database."""

import gzip
import hashlib
import io
import json
import logging
import re
import resource
import subprocess
import sys
import tarfile
import tempfile
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fuzzing import fuzz, json_value, scalar
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import inspect, text
from whole_history import fill, hub_database, tampered

from twoi2c_hub.accounting.db import make_engine, upgrade
from twoi2c_hub.accounting.models import to_ms
from twoi2c_hub.cli import main as cli
from twoi2c_hub.replicate import checks
from twoi2c_hub.replicate.archive import MANIFEST, export
from twoi2c_hub.replicate.restore import existing_rows

# a suite of hostile inputs, each through the importer or the CLI: `make test`, not `make check`
pytestmark = pytest.mark.slow
TWOI2C_HUB = str(Path(sys.executable).with_name("twoi2c-hub"))
SESSIONS = "tables/sessions.jsonl"
HOSTILE = fuzz(25)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A valid archive with every kind of member: the tables, the config, the hub's people."""
    directory = tmp_path_factory.mktemp("source")
    url = f"sqlite:///{directory / 'source.sqlite'}"
    upgrade(url)
    fill(url)
    hub_db = f"sqlite:///{directory / 'jupyterhub.sqlite'}"
    with logging_kept():
        hub_database(hub_db, [("admin", True, []), ("user1", False, ["students", "staff"])])
    path = directory / "hub.tar"
    export(url, "hub: {name: Source}\n", path, hub_db)
    return path


def ids(cases: dict) -> list[str]:
    """Test ids from the cases' descriptions: "a list" -> a-list."""
    return [re.sub(r"[^a-z0-9]+", "-", case.lower()).strip("-") for case in cases]


def members(archive) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {info.name: tar.extractfile(info).read() for info in tar}


def manifest_of(archive) -> dict:
    return json.loads(members(archive)[MANIFEST])


class Repeated:
    """`size` bytes of `byte` as a file to read, never all in memory."""

    def __init__(self, byte: bytes, size: int):
        self.byte, self.size = byte, size

    def read(self, n: int = -1) -> bytes:
        n = self.size if n < 0 else min(n, self.size)
        self.size -= n
        return self.byte * n


def tar_of(out, items) -> Path:
    """A tar of `items`: (name or TarInfo, bytes or Repeated), in order."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in items:
            info = name if isinstance(name, tarfile.TarInfo) else tarfile.TarInfo(name)
            if isinstance(data, Repeated):
                info.size = data.size
                tar.addfile(info, data)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return Path(out)


def forged(source, out, changes=None, change_manifest=None) -> Path:
    """A copy of `source` with members changed (`changes`: name -> a function of its bytes)
    and the manifest's row counts and checksums made to match, as an attacker would; then
    the manifest changed by `change_manifest(manifest)`."""
    data = members(source)
    manifest = json.loads(data.pop(MANIFEST))
    for name, change in (changes or {}).items():
        data[name] = change(data[name])
    for entry in [*manifest["tables"], *manifest["hub"], manifest["config"]]:
        entry["sha256"] = hashlib.sha256(data[entry["name"]]).hexdigest()
        if "rows" in entry:
            entry["rows"] = data[entry["name"]].count(b"\n")
    if change_manifest is not None:
        change_manifest(manifest)
    return tar_of(out, [(MANIFEST, json.dumps(manifest).encode()), *data.items()])


def nothing_written(url: str, hub_db: str | None = None) -> bool:
    """No accounting row, and no person or group in the hub's database."""
    for database in filter(None, (url, hub_db)):
        if database.startswith("sqlite") and not Path(database.removeprefix("sqlite:///")).exists():
            continue
        engine = make_engine(database)
        with engine.connect() as connection:
            if database == url:
                found = existing_rows(connection)
            else:
                found = {t: 1 for t in ("users", "groups") if inspect(connection).has_table(t)}
                found = {t: n for t in found if (n := connection.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar())}
        engine.dispose()
        if found:
            return False
    return True


@contextmanager
def logging_kept():
    """JupyterHub's database set-up adds a handler on stderr to the root logger and turns
    Alembic's logging on (for this process: each command runs in its own); undone."""
    handlers, level = list(logging.root.handlers), logging.getLogger("alembic").level
    try:
        yield
    finally:
        logging.root.handlers[:] = handlers
        logging.getLogger("alembic").setLevel(level)


def run_import(archive, directory: Path, capsys, url: str | None = None) -> tuple[int, str, str, str]:
    """(exit code, stderr, url, hub db): `twoi2c-hub import` with every option."""
    url = url or f"sqlite:///{directory / 'target.sqlite'}"
    hub_db = f"sqlite:///{directory / 'target-hub.sqlite'}"
    extracted = directory / "extracted.yaml"
    with logging_kept():
        code = cli(["import", str(archive), "--url", url, "--extract-config", str(extracted), "--hub-db", hub_db])
    err = capsys.readouterr().err
    if code != 0:
        assert not extracted.exists()
    return code, err, url, hub_db


def assert_refused(archive, directory, capsys, *words, url=None) -> str:
    """A non-zero exit, one line on stderr naming the archive once and saying `words`,
    nothing written; the line."""
    code, err, url, hub_db = run_import(archive, directory, capsys, url)
    assert code != 0
    assert err.count("\n") == 1 and err.endswith("\n") and "Traceback" not in err, err
    assert err.startswith(f"{archive}: ") and err.count(str(archive)) == 1, err
    for word in words:
        assert word in err, err
    assert nothing_written(url, hub_db)
    return err


def test_a_valid_archive_still_imports_with_everything(source, tmp_path, capsys):
    code, err, url, hub_db = run_import(source, tmp_path, capsys)
    assert code == 0, err
    assert not nothing_written(url) and not nothing_written(hub_db)
    assert "name: Source" in (tmp_path / "extracted.yaml").read_text()


# --- the manifest ----------------------------------------------------------------------


def in_manifest(change):
    """A change of the manifest member's bytes as a change of the archive (for `tampered`)."""
    return lambda name, data: change(data) if name == MANIFEST else data


def raw(data: bytes):
    return lambda manifest_bytes: data


def setting(path: str, value):
    """A change of the manifest: the value at `path` ("tables.0.rows") set, or deleted (...)."""

    def change(manifest_bytes: bytes) -> bytes:
        manifest = json.loads(manifest_bytes)
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node = manifest
        for part in parents:
            node = node[part]
        if value is ...:
            del node[last]
        else:
            node[last] = value(node[last]) if callable(value) else value
        return json.dumps(manifest).encode()

    return change


def renamed(table: str):
    """A change of the manifest: its first table named `table`, its member too."""
    return lambda data: setting("tables.0.name", f"tables/{table}.jsonl")(setting("tables.0.table", table)(data))


def nested(depth: int) -> bytes:
    return b'{"format": "twoi2c-hub-archive", "x": ' + b"[" * depth + b"]" * depth + b"}"


MANIFESTS = {
    "not JSON": (raw(b"{"), "manifest.json: not JSON"),
    "empty": (raw(b""), "manifest.json: not JSON"),
    "a list": (raw(b"[]"), "manifest.json: not a JSON object"),
    "a string": (raw(b'"twoi2c-hub-archive"'), "manifest.json: not a JSON object"),
    "not UTF-8": (raw(b'{"format": "\xff"}'), "manifest.json: not JSON"),
    "nested past Python's recursion limit": (raw(nested(100_000)), "nested deeper than 16"),
    "nested past the depth limit": (raw(nested(20)), "nested deeper than 16"),
    "larger than its limit": (raw(b" " * (2 << 20)), "over the limit of 1 MiB"),
    "of another format": (setting("format", "zip"), "not a twoi2c-hub archive"),
    "without a format": (setting("format", ...), "not a twoi2c-hub archive"),
    "format_version a string": (setting("format_version", "1"), "format_version must be a whole number"),
    "format_version a float": (setting("format_version", 1.0), "format_version must be a whole number"),
    "format_version negative": (setting("format_version", -1), "format_version must be a whole number"),
    "format_version zero": (setting("format_version", 0), "format_version must be a whole number"),
    "format_version true": (setting("format_version", True), "format_version must be a whole number"),
    "format_version missing": (setting("format_version", ...), "format_version must be a whole number"),
    "schema_revision missing": (setting("schema_revision", ...), "schema_revision must be"),
    "schema_revision a number": (setting("schema_revision", 8), "schema_revision must be"),
    "schema_revision with SQL": (setting("schema_revision", "0008'; DROP TABLE sessions; --"), "schema_revision"),
    "schema_revision huge": (setting("schema_revision", "9" * 5000), "schema_revision must be"),
    "tables missing": (setting("tables", ...), "tables must be a list"),
    "tables an object": (setting("tables", {}), "tables must be a list"),
    "a table entry a string": (setting("tables.0", "sessions"), "tables[0] must be an object"),
    "rows a string": (setting("tables.0.rows", "5"), "tables[0].rows must be a whole number"),
    "rows negative": (setting("tables.0.rows", -1), "tables[0].rows must be a whole number"),
    "rows huge": (setting("tables.0.rows", 10**300), "do not match the manifest"),
    "rows missing": (setting("tables.0.rows", ...), "tables[0].rows must be a whole number"),
    "sha256 missing": (setting("tables.0.sha256", ...), "tables[0].sha256 must be"),
    "sha256 not hex": (setting("tables.0.sha256", "z" * 64), "tables[0].sha256 must be"),
    "columns a string": (setting("tables.0.columns", "id"), "tables[0].columns must be a list"),
    "a column a number": (setting("tables.0.columns.0", 1), "tables[0].columns must be a list"),
    "a column not in the table": (setting("tables.0.columns.0", "evil"), '"evil" is not a column of'),
    "a column with SQL": (setting("tables.0.columns.0", 'id") VALUES (1); DROP TABLE sessions; --'), "not a column"),
    "a column twice": (setting("tables.0.columns", lambda c: [*c, c[0]]), "twice"),
    "a column missing": (setting("tables.0.columns", lambda c: c[1:]), "misses"),
    "an unknown table": (renamed("nope"), '"nope" is not a table'),
    "a table with SQL": (setting("tables.0.table", "sessions; DROP TABLE budget_ledger"), "table must be a table name"),
    "alembic's own table": (renamed("alembic_version"), '"alembic_version" is not a table'),
    "a table under another member's name": (setting("tables.0.name", SESSIONS), "tables[0].name must be"),
    "a member named outside tables/": (setting("tables.0.name", "../../etc/passwd"), "tables[0].name must be"),
    "a table listed twice": (setting("tables", lambda t: [*t, t[0]]), "twice"),
    "too many members": (setting("tables", lambda t: t * 10), "over the limit of 64"),
    "hub an object": (setting("hub", {}), "hub must be a list"),
    "a hub member of another name": (setting("hub.0.name", "hub/../../etc/passwd"), "hub[0].name must be"),
    "config a string": (setting("config", "community.yaml"), "config must be an object"),
    "config of another name": (setting("config.name", "/etc/passwd"), "config.name must be"),
    "secrets missing": (setting("secrets", ...), "secrets must be a list"),
    "a secret's setting on two lines": (setting("secrets", [{"setting": "a\nb"}]), "secrets[0].setting must be"),
}


@pytest.mark.parametrize("change, message", MANIFESTS.values(), ids=ids(MANIFESTS))
def test_a_hostile_manifest_is_refused_in_one_line_saying_what_is_wrong(source, tmp_path, capsys, change, message):
    archive = tampered(source, tmp_path / "a.tar", in_manifest(change))
    line = assert_refused(archive, tmp_path, capsys, message)
    assert "upgrade twoi2c-hub" not in line  # only a newer archive is told to upgrade


def test_only_an_archive_from_a_newer_twoi2c_hub_is_told_to_upgrade(source, tmp_path, capsys):
    newer = tampered(source, tmp_path / "n.tar", in_manifest(setting("format_version", 2)))
    assert_refused(newer, tmp_path, capsys, "format version 2", "upgrade twoi2c-hub")
    later = tampered(source, tmp_path / "s.tar", in_manifest(setting("schema_revision", "0099")))
    assert_refused(later, tmp_path, capsys, "schema (0099) is newer", "upgrade twoi2c-hub")


# --- the tar: its members and their kinds ------------------------------------------------


def special(name: str, kind: bytes, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def layout(source, out, change) -> Path:
    """`source` with its list of (name, bytes) members changed by `change(items)`."""
    return tar_of(out, change(list(members(source).items())))


def replacing(name: str, by):
    return lambda items: [(by, b"") if n == name else (n, d) for n, d in items]


LAYOUTS = {
    "a member twice": (lambda items: [*items, items[-1]], "in the archive twice"),
    "a second manifest": (lambda items: [*items, (MANIFEST, items[0][1])], "'manifest.json' is in the archive twice"),
    "a member the manifest does not list": (lambda items: [*items, ("tables/extra.jsonl", b"")], "does not list"),
    "a member named with dot dot": (lambda items: [*items, ("../evil", b"x")], "'../evil' is a member the manifest"),
    "a member at an absolute path": (lambda items: [*items, ("/etc/evil", b"x")], "does not list"),
    "a member the manifest lists missing": (
        lambda items: [i for i in items if i[0] != "tables/home_usage.jsonl"],
        "tables/home_usage.jsonl missing",
    ),
    "the config missing": (lambda items: [i for i in items if i[0] != "community.yaml"], "community.yaml missing"),
    "the manifest not first": (lambda items: [*items[1:], items[0]], "its first member is not manifest.json"),
    "the manifest a symbolic link": (replacing(MANIFEST, special(MANIFEST, tarfile.SYMTYPE, "x")), "symbolic link"),
    "the manifest a directory": (replacing(MANIFEST, special(MANIFEST, tarfile.DIRTYPE)), "a directory"),
    "a table a symbolic link": (replacing(SESSIONS, special(SESSIONS, tarfile.SYMTYPE, "/etc/passwd")), "symbolic"),
    "a table a hard link": (replacing(SESSIONS, special(SESSIONS, tarfile.LNKTYPE, MANIFEST)), "a hard link"),
    "a table a device": (replacing(SESSIONS, special(SESSIONS, tarfile.CHRTYPE)), "a character device"),
    "a table a FIFO": (replacing(SESSIONS, special(SESSIONS, tarfile.FIFOTYPE)), "a FIFO"),
    "the config a hard link": (replacing("community.yaml", special("community.yaml", tarfile.LNKTYPE, "x")), "hard"),
    "a hub member a block device": (replacing("hub/users.jsonl", special("hub/users.jsonl", tarfile.BLKTYPE)), "block"),
}


@pytest.mark.parametrize("change, message", LAYOUTS.values(), ids=ids(LAYOUTS))
def test_a_hostile_layout_is_refused_in_one_line(source, tmp_path, capsys, change, message):
    assert_refused(layout(source, tmp_path / "a.tar", change), tmp_path, capsys, message)


def test_a_long_pax_header_is_refused_before_tarfile_reads_it_whole(source, tmp_path, capsys):
    info = tarfile.TarInfo(SESSIONS)
    info.pax_headers = {"comment": "x" * (checks.MAX_EXTENDED_HEADER_BYTES + 1)}
    archive = layout(source, tmp_path / "a.tar", replacing(SESSIONS, info))
    assert_refused(archive, tmp_path, capsys, "extended tar header", "over the limit of 64 KiB")


def files(directory: Path) -> dict[str, Path]:
    """Files that are not archives, or not whole ones."""
    whole = (directory / "whole.tar").read_bytes()
    made = {
        "empty": b"",
        "text": b"hello, world\n" * 100,
        "cut in its first header": whole[:100],
        "cut in the middle": whole[: len(whole) * 6 // 10],
        "a header with a wrong checksum": whole[:148] + b"0000000\0" + whole[156:],
    }
    out = {}
    for name, data in made.items():
        out[name] = directory / f"{name}.tar"
        out[name].write_bytes(data)
    out["gzip"] = directory / "hub.tar.gz"
    out["gzip"].write_bytes(gzip.compress(whole))
    out["gzip cut short"] = directory / "cut.tar.gz"
    out["gzip cut short"].write_bytes(out["gzip"].read_bytes()[:-100])
    out["gzip corrupt"] = directory / "corrupt.tar.gz"
    gz = out["gzip"].read_bytes()
    out["gzip corrupt"].write_bytes(gz[:20] + bytes(b ^ 0xFF for b in gz[20:60]) + gz[60:])
    out["a directory"] = directory / "folder.tar"
    out["a directory"].mkdir()
    out["no such file"] = directory / "nowhere.tar"
    return out


FILES = {
    "empty": "not a tar archive (empty file)",
    "text": "not a tar archive",
    "cut in its first header": "not a tar archive",
    "cut in the middle": "truncated",
    "a header with a wrong checksum": "not a tar archive",
    "gzip": "compressed with gzip",
    "gzip cut short": "compressed with gzip",
    "gzip corrupt": "compressed with gzip",
    "a directory": "a directory, not an archive",
    "no such file": "No such file or directory",
}


@pytest.mark.parametrize("kind, message", FILES.items(), ids=ids(FILES))
def test_a_file_that_is_not_a_whole_archive_is_refused_in_one_line(source, tmp_path, capsys, kind, message):
    (tmp_path / "whole.tar").write_bytes(source.read_bytes())
    assert_refused(files(tmp_path)[kind], tmp_path, capsys, message)


# --- sizes ---------------------------------------------------------------------------------


def test_a_config_over_its_limit_is_refused_before_it_is_read(source, tmp_path, capsys):
    archive = forged(source, tmp_path / "a.tar", {"community.yaml": lambda d: b"#" * (checks.MAX_CONFIG_BYTES + 1)})
    assert_refused(archive, tmp_path, capsys, "community.yaml is 1,048,577 bytes", "over the limit of 1 MiB")


def test_members_over_their_limits_are_refused_before_they_are_read(source, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(checks, "MAX_HUB_MEMBER_BYTES", 100)
    monkeypatch.setattr(checks, "MAX_TABLE_BYTES", 40 << 10)
    line = assert_refused(forged(source, tmp_path / "a.tar"), tmp_path, capsys, "over the limit of 100 bytes")
    assert "hub/" in line
    monkeypatch.setattr(checks, "MAX_HUB_MEMBER_BYTES", 1 << 20)
    assert_refused(forged(source, tmp_path / "b.tar"), tmp_path, capsys, SESSIONS, "over the limit of 40 KiB")


def long_line_archive(source, out: Path, line_bytes: int) -> Path:
    """`source` whose sessions member is one line of `line_bytes`, streamed (never in memory)."""
    items = list(members(source).items())
    line = Repeated(b"1", line_bytes)
    return tar_of(out, [(n, line if n == SESSIONS else d) for n, d in items])


def test_a_line_over_its_limit_is_refused_with_its_member_and_number(source, tmp_path, capsys):
    archive = long_line_archive(source, tmp_path / "a.tar", 3 * checks.MAX_LINE_BYTES)
    assert_refused(archive, tmp_path, capsys, f"{SESSIONS} line 1", "over the limit of 1 MiB")


def test_a_200_mb_line_is_refused_in_bounded_memory(source, tmp_path):
    """The real command under a 400 MB address-space limit: the line is refused once it
    passes its limit, long before the importer's memory could hold it."""
    archive = long_line_archive(source, tmp_path / "a.tar", 200 << 20)
    url = f"sqlite:///{tmp_path / 'target.sqlite'}"

    def limited():
        resource.setrlimit(resource.RLIMIT_AS, (400 << 20, 400 << 20))

    done = subprocess.run(
        [TWOI2C_HUB, "import", str(archive), "--url", url], preexec_fn=limited, capture_output=True, timeout=120
    )
    err = done.stderr.decode()
    assert done.returncode == 1 and err.count("\n") == 1 and "Traceback" not in err, err
    assert f"{SESSIONS} line 1" in err and "over the limit of 1 MiB" in err
    assert nothing_written(url)


# --- rows --------------------------------------------------------------------------------

LATEST_MS = to_ms(datetime(9000, 1, 1, tzinfo=UTC))


def with_value(table: str, column: str, value: bytes, line: int = 3):
    """A change of a table member: line `line`'s `column` written as the JSON `value`."""

    def change(manifest, data: bytes) -> bytes:
        columns = next(t["columns"] for t in manifest["tables"] if t["table"] == table)
        lines = data.split(b"\n")
        row = json.loads(lines[line - 1])
        parts = [value if c == column else json.dumps(v).encode() for c, v in zip(columns, row, strict=True)]
        lines[line - 1] = b"[" + b",".join(parts) + b"]"
        return b"\n".join(lines)

    return table, change


def with_line(table: str, line: int, new):
    """A change of a table member: line `line` replaced by `new(old)` (None: removed)."""

    def change(manifest, data: bytes) -> bytes:
        lines = data.split(b"\n")
        lines[line - 1 : line] = [] if new is None else [new(lines[line - 1])]
        return b"\n".join(lines)

    return table, change


ROWS = {
    "a string for an integer": (with_value("sessions", "gpu_count", b'"2"'), "line 3: gpu_count must be a whole"),
    "true for an integer": (with_value("sessions", "gpu_count", b"true"), "line 3: gpu_count must be a whole"),
    "a float for an integer": (with_value("sessions", "gpu_count", b"1.5"), "line 3: gpu_count"),
    "an array for an integer": (with_value("sessions", "gpu_count", b"[1]"), "line 3: gpu_count"),
    "an object for an integer": (with_value("sessions", "gpu_count", b'{"a": 1}'), "line 3: gpu_count"),
    "an integer past 32 bits": (with_value("sessions", "gpu_count", b"2147483648"), "gpu_count must be a whole"),
    "an integer past 64 bits": (with_value("sessions", "mem_limit_bytes", b"%d" % 2**70), "mem_limit_bytes"),
    "an integer of 5000 digits": (with_value("sessions", "mem_limit_bytes", b"9" * 5000), "line 3"),
    "1 for a boolean": (with_value("sessions", "rolled_up", b"1"), "line 3: rolled_up must be true or false"),
    "NaN": (with_value("sessions", "cpu_limit", b"NaN"), "line 3: cpu_limit must be a finite number"),
    "Infinity": (with_value("sessions", "cpu_limit", b"Infinity"), "cpu_limit must be a finite number"),
    "minus Infinity": (with_value("sessions", "cpu_limit", b"-Infinity"), "cpu_limit must be a finite number"),
    "1e400": (with_value("sessions", "cpu_limit", b"1e400"), "cpu_limit must be a finite number"),
    "an integer past a float": (with_value("sessions", "cpu_limit", b"9" * 400), "cpu_limit must be a finite"),
    "a string for a float": (with_value("sessions", "cpu_limit", b'"1.5"'), "cpu_limit must be a finite number"),
    "300 characters in a name of 255": (with_value("sessions", "username", b'"%s"' % (b"u" * 300)), "at most 255"),
    "null where a value is needed": (with_value("sessions", "username", b"null"), "line 3: username must be"),
    "a NUL character": (with_value("sessions", "username", b'"a\\u0000b"'), "line 3: username"),
    "a lone surrogate": (with_value("sessions", "image", b'"\\ud800"'), "line 3: image"),
    "a time before 1970": (
        with_value("sessions", "started_ms", b"-1"),
        "started_ms must be milliseconds from 1970-01-01",
    ),
    "a time in year 9000": (with_value("sessions", "started_ms", b"%d" % LATEST_MS), "to 8999-12-31"),
    "a day before 1970": (with_value("usage_daily_user", "day", b"-1", line=1), "line 1: day must be a day"),
    "a day in year 9000": (with_value("usage_daily_user", "day", b"%d" % (LATEST_MS // 86_400_000), 1), "day must"),
    "a month before 1970": (with_value("usage_monthly_user", "month", b"0", line=1), "line 1: month must be"),
    "a 10 MB string": (with_value("sessions", "image", b'"%s"' % (b"x" * 10_000_000)), "line 3 is over the limit"),
    "a row of another width": (with_line("sessions", 3, lambda old: old[: old.rindex(b",")] + b"]"), "line 3: 20"),
    "a line not an array": (with_line("sessions", 3, lambda old: b'{"id": 3}'), "line 3: not an array"),
    "two arrays on a line": (with_line("sessions", 3, lambda old: old + b"," + old), "line 3: not JSON"),
    "a blank line": (with_line("sessions", 3, lambda old: b""), "line 3: not JSON"),
    "bytes that are not UTF-8": (with_line("sessions", 3, lambda old: old.replace(b'"', b'"\xff', 1)), "line 3: not"),
    "a deeply nested line": (with_line("sessions", 3, lambda old: b"[" * 100_000 + b"]" * 100_000), "nested deeper"),
    "the last line cut short": (with_line("sessions", 301, None), "its last line is cut short"),
    "a row twice": (with_line("sessions", 3, lambda old: old + b"\n" + old), "the database refuses its rows"),
    "a group of no session": (with_value("session_groups", "session_id", b"99999", 1), "the database refuses"),
}


@pytest.mark.parametrize("change, message", ROWS.values(), ids=ids(ROWS))
def test_a_hostile_row_is_refused_with_its_member_and_line_and_not_stored(
    source, tmp_path, capsys, database_url, change, message
):
    table, change_member = change
    manifest = manifest_of(source)
    archive = forged(source, tmp_path / "a.tar", {f"tables/{table}.jsonl": lambda d: change_member(manifest, d)})
    assert_refused(archive, tmp_path, capsys, f"tables/{table}.jsonl", message, url=database_url)


HUB_ROWS = {
    "a person not an object": (b"[1]\n", "hub/users.jsonl line 1: not a JSON object"),
    "a person without a name": (
        b'{"admin": false, "created": null, "last_activity": null, "groups": []}\n',
        "line 1: name must be",
    ),
    "admin a string": (
        b'{"name": "a", "admin": "yes", "created": null, "last_activity": null, "groups": []}\n',
        "line 1: admin must be true or false",
    ),
    "a date that is not one": (
        b'{"name": "a", "admin": false, "created": "yesterday", "last_activity": null, "groups": []}\n',
        "line 1: created must be",
    ),
    "a group the archive does not have": (
        b'{"name": "a", "admin": false, "created": null, "last_activity": null, "groups": ["nope"]}\n',
        "line 1: groups",
    ),
    "a person twice": (
        b'{"name": "a", "admin": false, "created": null, "last_activity": null, "groups": []}\n' * 2,
        'line 2: "a" twice',
    ),
    "not JSON": (b"{\n", "hub/users.jsonl line 1: not JSON"),
}


@pytest.mark.parametrize("users, message", HUB_ROWS.values(), ids=ids(HUB_ROWS))
def test_the_hubs_people_are_checked_before_anything_is_written(source, tmp_path, capsys, users, message):
    archive = forged(source, tmp_path / "a.tar", {"hub/users.jsonl": lambda d: users})
    assert_refused(archive, tmp_path, capsys, message)


# --- anything ------------------------------------------------------------------------------

MANIFEST_PATHS = st.sampled_from(
    "format format_version schema_revision secrets config config.name config.sha256 hub hub.0 hub.0.name "
    "hub.0.rows tables tables.0 tables.3.name tables.3.table tables.3.rows tables.3.columns tables.3.columns.2 "
    "tables.3.sha256".split()
)


def assert_imported_or_refused(archive, capsys) -> None:
    with tempfile.TemporaryDirectory() as directory:
        code, err, url, hub_db = run_import(archive, Path(directory), capsys)
        if code != 0:
            assert err.count("\n") == 1 and "Traceback" not in err and err.startswith(f"{archive}: "), err
            assert nothing_written(url, hub_db)


def test_any_manifest_is_imported_or_refused_in_one_line(source, tmp_path, capsys):
    @HOSTILE
    @given(st.lists(st.tuples(MANIFEST_PATHS, st.one_of(json_value, st.just(...))), min_size=1, max_size=3))
    def check(changes):
        def change(data):
            for path, value in changes:
                try:
                    data = setting(path, value)(data)
                except (KeyError, IndexError, TypeError):
                    pass  # a path that the changes before took away
            return data

        archive = tampered(source, tmp_path / "a.tar", in_manifest(change))
        assert_imported_or_refused(archive, capsys)

    check()


def test_any_member_content_is_imported_or_refused_in_one_line(source, tmp_path, capsys):
    manifest = manifest_of(source)
    widths = {t["name"]: len(t["columns"]) for t in manifest["tables"]}
    lines = st.sampled_from(sorted(widths)).flatmap(
        lambda member: st.tuples(
            st.just(member),
            st.lists(
                st.one_of(
                    st.lists(scalar, min_size=widths[member], max_size=widths[member]).map(json.dumps),
                    json_value.map(json.dumps),
                    st.text(max_size=20),
                ),
                max_size=4,
            ),
        )
    )

    @HOSTILE
    @given(lines, st.booleans())
    def check(member_lines, ends_in_newline):
        member, written = member_lines
        data = "\n".join(written).encode("utf-8", "surrogatepass") + (b"\n" if ends_in_newline and written else b"")
        assert_imported_or_refused(forged(source, tmp_path / "a.tar", {member: lambda d: data}), capsys)

    check()
