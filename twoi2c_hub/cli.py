"""The `twoi2c-hub` command: check-config, demo, server-account, db upgrade, bill import,
export, import, forget, convert, fleet collect and report."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from . import server_account
from .config import yamlfile
from .config.loading import ConfigError, load_config
from .demo import demo


def check_config(args) -> int:
    from .config.fleet import is_fleet_file, load_fleet

    fleet = args.fleet or is_fleet_file(args.file)
    try:
        config = load_fleet(args.file) if fleet else load_config(args.file)
    except ConfigError as e:
        for line in e.errors:
            print(f"{e.path}: {line}", file=sys.stderr)
        print(f"{len(e.errors)} error(s) in {e.path}", file=sys.stderr)
        return 1
    if fleet:
        sizes = f"{len(config.hubs)} hubs on {len(config.clusters)} clusters, {len(config.communities)} communities"
        print(f"{args.file}: OK (a fleet of {sizes})")
        return 0
    profiles = config.profile_list()
    choices = sum(len(o.get("choices", {})) for p in profiles for o in p.get("profile_options", {}).values())
    print(f"{args.file}: OK ({len(profiles)} profiles, {choices} choices)")
    return 0


def fleet_commands_run(name: str):
    """`twoi2c-hub fleet collect|report`, imported when run."""

    def run(args) -> int:
        from .services.fleet import commands

        return getattr(commands, name)(args)

    return run


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
    try:
        config_text = yamlfile.read_text(args.config, yamlfile.MAX_CONFIG_BYTES) if args.config else None
        manifest = export(url, config_text, Path(args.out), args.hub_db)
    except ArchiveError as e:
        print(str(e), file=sys.stderr)
        return 1
    except yamlfile.YamlRefused as e:  # read as it is (--url): the config's checks did not run
        print(f"{args.config}: {e.where}{'not YAML: ' if e.syntax else ''}{e.problem}", file=sys.stderr)
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

    check = commands.add_parser("check-config", help="validate a community config or a fleet config file")
    check.add_argument("file")
    check.add_argument(
        "--fleet", action="store_true", help="read it as a fleet config (the default when it has a fleet: key)"
    )
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

    fleet = commands.add_parser("fleet", help="one operator's hubs: collect their figures")
    fleet_commands = fleet.add_subparsers(dest="fleet_command", required=True)
    fleet_pull = fleet_commands.add_parser(
        "collect", help="pull every hub's people (as digests) and months into the fleet's database"
    )
    fleet_pull.add_argument("--config", required=True, help="the fleet config (fleet.yaml)")
    fleet_pull.add_argument(
        "--full", action="store_true", help="ask each hub again for all of history_days, not only what changed"
    )
    fleet_pull.set_defaults(run=fleet_commands_run("collect"))
    fleet_figures = fleet_commands.add_parser(
        "report", help="active users counted once, and each community's money for a month, from what was collected"
    )
    fleet_figures.add_argument("--config", required=True, help="the fleet config (fleet.yaml)")
    fleet_figures.add_argument("--day", help="the day of the active users (default: yesterday, UTC)")
    fleet_figures.add_argument("--month", help="the month of the money, YYYY-MM (default: the day's)")
    fleet_figures.add_argument(
        "--aggregate",
        choices=("hub", "cluster", "community", "fleet"),
        default="community",
        help="people counted once per",
    )
    fleet_figures.add_argument("--json", action="store_true", help="one JSON object")
    fleet_figures.set_defaults(run=fleet_commands_run("report"))

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
    try:
        return args.run(args)
    except (SQLAlchemyError, OSError) as e:  # a database or file out of reach: said, not a traceback
        command = " ".join(value for name, value in vars(args).items() if name.endswith("command"))
        print(f"twoi2c-hub {command}: {_in_one_line(e)}", file=sys.stderr)
        return 1


def _in_one_line(error: Exception) -> str:
    """What went wrong, without the statement, the URL or SQLAlchemy's background link."""
    if isinstance(error, OSError):
        return f"{error.strerror or error}: {error.filename}" if error.filename else str(error)
    text = str(getattr(error, "orig", None) or error).strip()
    return (text.splitlines() or [type(error).__name__])[0][:300]


if __name__ == "__main__":
    sys.exit(main())
