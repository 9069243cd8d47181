"""The `twoi2c-hub` command: check-config, demo, server-account, db upgrade, bill import."""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import signal
import sys
import tempfile
import time
from pathlib import Path

from . import server_account
from .config.loading import ConfigError, load_config
from .paths import examples_dir


def check_config(args) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as e:
        for line in e.errors:
            print(f"{e.path}: {line}", file=sys.stderr)
        print(f"{len(e.errors)} error(s) in {e.path}", file=sys.stderr)
        return 1
    profiles = config.profile_list()
    choices = sum(len(o.get("choices", {})) for p in profiles for o in p.get("profile_options", {}).values())
    print(f"{args.file}: OK ({len(profiles)} profiles, {choices} choices)")
    return 0


def demo_homes(data_dir: Path) -> Path:
    """Where the demo's server user keeps its homes: a place it can reach (/tmp), the same
    for the same data dir, so that a demo restarted with --data-dir finds them again."""
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"twoi2c-demo-homes-{digest}"


def demo(args) -> int:
    from .localhub import LocalHub

    password = args.password or os.environ.get("TWOI2C_DEMO_PASSWORD") or secrets.token_urlsafe(9)
    config_path = Path(args.config) if args.config else examples_dir() / "demo-community.yaml"
    try:
        config = load_config(config_path)
    except ConfigError as e:
        print(str(e), file=sys.stderr)
        return 1
    data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="twoi2c-demo-"))
    account = None
    if os.geteuid() == 0:  # never run people's servers as root, nor as the hub's user
        try:
            account = server_account.ensure()
        except server_account.SetupError as e:
            print(str(e), file=sys.stderr)
            return 1
    else:
        print("Not run as root: every server runs as you, and can read the hub's secrets.", file=sys.stderr)
    environment = {}
    if not os.environ.get("JUPYTERHUB_CRYPT_KEY"):  # OAuth providers keep tokens in auth state
        environment["JUPYTERHUB_CRYPT_KEY"] = _demo_crypt_key(data_dir)
    workshop = _workshop_password_env(config)
    if workshop and not os.environ.get(workshop):  # the demo's password opens the workshop
        environment[workshop] = password
    hub = LocalHub(
        config_path,
        data_dir,
        port=args.port,
        password=password,
        environment=environment,
        server_account=account,
        homes_dir=args.homes_dir or (demo_homes(data_dir) if account else None),
    )
    print(f"Starting {config.hub.name} (demo, log: {hub.log_file}) ...", flush=True)

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    # Ctrl-C stops the demo even when started from a shell that ignores it (a background
    # job of a script inherits SIGINT ignored, and Python then leaves it ignored)
    signal.signal(signal.SIGINT, interrupted)
    try:
        hub.start()
        print(
            f"\n  {config.hub.name} is running at {hub.url}/\n{how_to_log_in(config, password)}\n"
            "  Press Ctrl-C to stop.\n",
            flush=True,
        )
        hub.process.wait()
        print(f"JupyterHub exited with status {hub.process.returncode}; see {hub.log_file}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping the demo hub ...", flush=True)
        return 0
    except RuntimeError as e:
        print(str(e), file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave orphans
        hub.stop()
        print("Stopped.", flush=True)


def _demo_crypt_key(data_dir: Path) -> str:
    """The key for auth state: kept in the data dir, so that a demo restarted with the same
    --data-dir reads what it stored."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = data_dir / "crypt_key"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32))
    return path.read_text().strip()


def _workshop_password_env(config) -> str | None:
    if config.auth.provider != "workshop":
        return None
    return config.auth.workshop.password_env if config.auth.workshop else "TWOI2C_WORKSHOP_PASSWORD"


def how_to_log_in(config, password: str) -> str:
    """The lines the demo prints under its URL: who may log in, and how."""
    auth = config.auth
    if auth.provider == "demo":
        users = ", ".join(
            f"{name} ({'hub admin' if u.admin else ', '.join(u.groups) or 'no group'})"
            for name, u in auth.users.items()
        )
        return f"  Log in as {users}\n  Password: {password}\n"
    if auth.provider == "workshop":
        variable = _workshop_password_env(config)
        shown = password if os.environ.get(variable) in (None, "", password) else f"the one in ${variable}"
        return f"  Log in with any name and the workshop password.\n  Password: {shown}\n"
    return f"  Log in through the {auth.provider} provider: the login page has its button.\n"


def db_upgrade(args) -> int:
    from .accounting.db import upgrade

    url = args.url
    if url is None:
        try:
            url = load_config(args.config).usage.database_url
        except ConfigError as e:
            print(str(e), file=sys.stderr)
            return 1
    upgrade(url)
    print("The accounting database is at the latest schema.")
    return 0


def import_bill(args) -> int:
    from .accounting.bills import BillError, read_bill, store_bill
    from .accounting.db import make_engine, session_maker, upgrade

    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(str(e), file=sys.stderr)
        return 1
    if config.pricing is None:
        print(f"{args.config}: a bill is compared with the prices: add a pricing: section", file=sys.stderr)
        return 1
    url = args.url or config.usage.database_url
    try:
        with open(args.file, "rb") as file:
            source, totals = read_bill(file, config.pricing.currency)
    except (OSError, BillError) as e:
        print(f"{args.file}: {e}", file=sys.stderr)
        return 1
    upgrade(url)
    engine = make_engine(url)
    with session_maker(engine)() as db:
        count = store_bill(db, source, totals, config.pricing.currency, int(time.time() * 1000))
    engine.dispose()
    days = sorted({day for day, _ in totals})
    print(f"{args.file}: {source} bill, {count} day-and-service lines over {len(days)} days, "
          f"{sum(totals.values()):,.2f} {config.pricing.currency}")  # fmt: skip
    return 0


def _database_url(args) -> str | None:
    if args.url:
        return args.url
    if not args.config:
        print("give --config or --url", file=sys.stderr)
        return None
    try:
        return load_config(args.config).usage.database_url
    except ConfigError as e:
        print(str(e), file=sys.stderr)
        return None


def _unreadable_url(url: str) -> bool:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(url)
    except (ArgumentError, ValueError):
        return True
    return False


def export_hub(args) -> int:
    import yaml

    from .replicate.archive import ArchiveError, export

    url = _database_url(args)
    if url is None:
        return 1
    given = {"--url" if args.url else f"{args.config}: usage.database_url": url, "--hub-db": args.hub_db}
    for where, value in given.items():
        if value is not None and _unreadable_url(value):  # the message never shows it: it may hold a password
            print(
                f"{where}: not a database URL SQLAlchemy can read (like postgresql+psycopg://user@host/db)",
                file=sys.stderr,
            )
            return 1
    config_text = Path(args.config).read_text() if args.config else None
    try:
        manifest = export(url, config_text, Path(args.out), args.hub_db)
    except ArchiveError as e:
        print(str(e), file=sys.stderr)
        return 1
    except yaml.YAMLError as e:  # read as it is (--url): the config's checks did not run
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}:" if mark else ""
        print(f"{args.config}:{line} not YAML: {getattr(e, 'problem', None) or e}", file=sys.stderr)
        return 1
    rows = {m["table"]: m["rows"] for m in manifest["tables"]}
    print(f"{args.out}: {rows.get('sessions', 0):,} sessions, {sum(rows.values()):,} rows in {len(rows)} tables")
    for secret in manifest["secrets"]:
        what = secret.get("removed") or f"${secret['environment_variable']}"
        print(f"  not in the archive: {secret['setting']} ({what})")
    if args.hub_db is None:
        print("  not in the archive: the hub's people and groups (give --hub-db, JupyterHub's db_url)")
    return 0


def import_hub(args) -> int:
    from .replicate.archive import ArchiveError
    from .replicate.restore import restore

    url = _database_url(args)
    if url is None:
        return 1
    try:
        config_out = Path(args.extract_config) if args.extract_config else None
        manifest = restore(Path(args.archive), url, config_out, args.hub_db)
    except ArchiveError as e:  # one line, the archive named once
        print(f"{args.archive}: {' '.join(str(e).splitlines())}", file=sys.stderr)
        return 1
    rows = {m["table"]: m["rows"] for m in manifest["tables"]}
    print(f"{args.archive}: imported {rows.get('sessions', 0):,} sessions, {sum(rows.values()):,} rows")
    for secret in manifest["secrets"]:
        print(f"  to set on this install: {secret['setting']}")
    people = next((m["rows"] for m in manifest.get("hub", []) if m["name"].endswith("users.jsonl")), 0)
    if "hub_users_imported" in manifest:
        print(f"  the hub's people: {manifest['hub_users_imported']} in {args.hub_db}")
    elif people:
        print(f"  the hub's {people} people were not imported: give --hub-db (JupyterHub's db_url)")
    return 0


def forget_person(args) -> int:
    from .accounting.db import make_engine, session_maker, upgrade
    from .accounting.forgetting import forget

    url = _database_url(args)
    if url is None:
        return 1
    upgrade(url)
    engine = make_engine(url)
    with session_maker(engine)() as db:
        pseudonym = forget(db, args.username)
    engine.dispose()
    print(f"{args.username}: every row now says {pseudonym} (the figures stay in every report). "
          "Delete the person in the hub too (its admin page or REST API).")  # fmt: skip
    return 0


def convert_values(args) -> int:
    import yaml

    from .config.loading import parse_config
    from .replicate.convert import convert
    from .replicate.helm import ConvertError, read_values
    from .replicate.values import listed

    try:
        chart = [read_values(path) for path in args.chart_values or []]
        layers = [read_values(path) for path in args.values]
    except ConvertError as e:
        print(e, file=sys.stderr)
        return 1
    config, notes = convert(chart + layers, args.name, chart_layers=len(chart))
    text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    header = [f"# Converted by twoi2c-hub convert from {', '.join(args.values)}."]
    if notes:
        header.append("# Not converted (keep in the chart's values, or do by hand):")
        header += [f"#   {line}" for line in listed(notes)]
    text = "\n".join(header) + "\n" + text
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text, end="")
    print("".join(f"not converted: {line}\n" for line in listed(notes)), end="", file=sys.stderr)
    try:
        parse_config(text)
    except ConfigError as e:
        print(f"The converted config needs attention before use:\n{e}", file=sys.stderr)
        return 1
    return 0


def make_server_account(args) -> int:
    try:
        account = server_account.ensure(args.user, Path(args.path), args.python)
    except server_account.SetupError as e:
        print(str(e), file=sys.stderr)
        return 1
    print(f"Servers can run as {account.user} with {account.python}")
    return 0


def _database_arguments(parser: argparse.ArgumentParser) -> None:
    """--config or --url: which accounting database a command works on."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", help="a community config file (its usage.database_url)")
    where.add_argument("--url", help="a database URL, e.g. postgresql+psycopg://user@host/db")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="twoi2c-hub", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("check-config", help="validate a community config file")
    check.add_argument("file")
    check.set_defaults(run=check_config)

    run_demo = commands.add_parser("demo", help="run the demo hub on 127.0.0.1")
    run_demo.add_argument("--port", type=int, default=8000)
    run_demo.add_argument("--data-dir", help="where the hub keeps its files (default: a new temp dir)")
    run_demo.add_argument("--password", help="the demo users' password (default: $TWOI2C_DEMO_PASSWORD or random)")
    run_demo.add_argument(
        "--homes-dir", help="the servers' homes, run as root (default: /tmp/twoi2c-demo-homes-<data dir's digest>)"
    )
    run_demo.add_argument("--config", help="a community config file (default: examples/demo-community.yaml)")
    run_demo.set_defaults(run=demo)

    account = commands.add_parser(
        "server-account", help="make the unprivileged user and Python environment local servers run as (root)"
    )
    account.add_argument("--user", default=server_account.DEFAULT_USER)
    account.add_argument("--path", default=str(server_account.DEFAULT_PATH), help="where the environment goes")
    account.add_argument("--python", help="the Python to make it from (default: /usr/bin/python3)")
    account.set_defaults(run=make_server_account)

    bill = commands.add_parser("bill", help="cloud bills")
    bill_commands = bill.add_subparsers(dest="bill_command", required=True)
    bill_import = bill_commands.add_parser("import", help="import an AWS CUR or GCP billing export (CSV)")
    bill_import.add_argument("file")
    bill_import.add_argument("--config", required=True, help="the community config (its prices' currency)")
    bill_import.add_argument("--url", help="the accounting database (default: the config's usage.database_url)")
    bill_import.set_defaults(run=import_bill)

    database = commands.add_parser("db", help="the accounting database")
    database_commands = database.add_subparsers(dest="db_command", required=True)
    upgrade = database_commands.add_parser("upgrade", help="create or migrate it to the latest schema")
    _database_arguments(upgrade)
    upgrade.set_defaults(run=db_upgrade)

    exporting = commands.add_parser("export", help="the whole hub's history and config as one archive")
    exporting.add_argument("--out", required=True, help="the archive to write (a tar of JSON Lines)")
    exporting.add_argument("--config", help="the community config (archived without secrets; its database)")
    exporting.add_argument("--url", help="the accounting database (default: the config's usage.database_url)")
    exporting.add_argument("--hub-db", help="JupyterHub's database URL (its db_url): the hub's people and groups")
    exporting.set_defaults(run=export_hub)

    importing = commands.add_parser("import", help="load an archive into a new, empty accounting database")
    importing.add_argument("archive")
    _database_arguments(importing)
    importing.add_argument("--extract-config", help="write the archived community config to this new file")
    importing.add_argument("--hub-db", help="JupyterHub's database URL on this install: the people and groups go there")
    importing.set_defaults(run=import_hub)

    forgetting = commands.add_parser("forget", help="replace a person's name by a pseudonym in every row")
    forgetting.add_argument("username")
    _database_arguments(forgetting)
    forgetting.set_defaults(run=forget_person)

    converting = commands.add_parser("convert", help="a zero-to-jupyterhub hub's values as a community config")
    converting.add_argument("values", nargs="+", help="values files, layered in order as Helm layers them")
    converting.add_argument(
        "--chart-values",
        action="append",
        metavar="FILE",
        help="the chart's own values.yaml (e.g. 2i2c's basehub), layered below the values files as Helm "
        "coalesces a chart's defaults (repeatable)",
    )
    converting.add_argument("--name", help="the community's name (default: the values' homepage name)")
    converting.add_argument("--out", help="write the config here (default: print it)")
    converting.set_defaults(run=convert_values)

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
