"""Export and import of a whole hub's history, against SQLite's own dump and load.

Generates SESSIONS sessions (usage_report's generator) into a fresh SQLite database at
the latest schema, rolls them up as the service does, then times, each in a process of
its own so that its peak memory (maximum resident set) is its own:

- `twoi2c-hub export` of the database to an archive, and `sqlite3 DB .dump` of the same
  database to SQL text (the baseline);
- `twoi2c-hub import` of the archive into a new SQLite database, and `sqlite3 NEW < dump`
  (the baseline);
- and checks that the imported database has every row of the original.

Targets: peak memory <= 200 MB whatever the size; each direction <= 2x its baseline.
Prints one JSON object. `--sessions 20000` for a quick run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from usage_report import generate  # noqa: E402  (the same generated history)

from twoi2c_hub.accounting.db import make_engine, session_maker, upgrade  # noqa: E402
from twoi2c_hub.accounting.models import DAY_MS  # noqa: E402
from twoi2c_hub.accounting.rollups import roll_up  # noqa: E402

TWOI2C_HUB = str(Path(sys.executable).with_name("twoi2c-hub"))


def run(command: list[str], stdin=None, stdout=None) -> tuple[float, float]:
    """(seconds, peak resident MB) of `command`. The peak is the process's own high-water
    mark (VmHWM), read while it runs: a child's getrusage maximum would include the
    memory of this process, which it is forked from."""
    began = time.perf_counter()
    process = subprocess.Popen(command, stdin=stdin, stdout=stdout or subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_kb = 0
    status = Path(f"/proc/{process.pid}/status")
    while process.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kb = max(peak_kb, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    seconds = time.perf_counter() - began
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {process.stderr.read().decode()}")
    return seconds, peak_kb / 1024


def table_counts(path: Path) -> dict[str, int]:
    import sqlite3

    connection = sqlite3.connect(path)
    names = [
        r[0]
        for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        if not r[0].startswith("sqlite_") and r[0] != "alembic_version"
    ]
    counts = {n: connection.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0] for n in names}
    connection.close()
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args(argv)
    if shutil.which("sqlite3") is None:
        raise SystemExit("the baseline needs the sqlite3 command (apt-get install sqlite3)")

    work = Path(tempfile.mkdtemp(prefix="twoi2c-export-bench-"))
    try:
        source = work / "source.sqlite"
        url = f"sqlite:///{source}"
        upgrade(url)
        now = int(time.time() * 1000) // DAY_MS * DAY_MS
        began = time.perf_counter()
        generate(source, args.sessions, args.users, 50, 12, args.days, now)
        engine = make_engine(url)
        with session_maker(engine)() as db:
            roll_up(db, now)
        engine.dispose()
        figures: dict = {"sessions": args.sessions, "generate_seconds": round(time.perf_counter() - began, 1)}
        figures["database_mb"] = round(source.stat().st_size / 2**20, 1)

        archive, dump = work / "hub.tar", work / "dump.sql"
        with open(dump, "wb") as out:
            dump_s, dump_mb = run(["sqlite3", str(source), ".dump"], stdout=out)
        export_s, export_mb = run([TWOI2C_HUB, "export", "--url", url, "--out", str(archive)])
        loaded = work / "loaded.sqlite"
        with open(dump, "rb") as sql:
            load_s, load_mb = run(["sqlite3", str(loaded)], stdin=sql)
        imported = work / "imported.sqlite"
        import_s, import_mb = run([TWOI2C_HUB, "import", str(archive), "--url", f"sqlite:///{imported}"])

        original, copy = table_counts(source), table_counts(imported)
        figures.update(
            {
                "archive_mb": round(archive.stat().st_size / 2**20, 1),
                "dump_mb": round(dump.stat().st_size / 2**20, 1),
                "export_seconds": round(export_s, 2),
                "export_peak_mb": round(export_mb, 1),
                "baseline_dump_seconds": round(dump_s, 2),
                "export_vs_dump": round(export_s / dump_s, 2),
                "import_seconds": round(import_s, 2),
                "import_peak_mb": round(import_mb, 1),
                "baseline_load_seconds": round(load_s, 2),
                "import_vs_load": round(import_s / load_s, 2),
                "baseline_peak_mb": round(max(dump_mb, load_mb), 1),
                "rows": sum(original.values()),
                "every_row_imported": original == copy,
                "targets_met": export_mb <= 200
                and import_mb <= 200
                and export_s <= 2 * dump_s
                and import_s <= 2 * load_s,
            }
        )
        print(json.dumps(figures))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
