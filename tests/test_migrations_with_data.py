"""Upgrading a database made at every earlier schema revision, full of data, on SQLite and
PostgreSQL: nothing is lost, and every report reads the same as on a database made at the
latest revision from the same history."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, insert, inspect
from whole_history import every_row, fill, reports

from twoi2c_hub.accounting.db import alembic_config, make_engine, upgrade
from twoi2c_hub.accounting.models import Base
from twoi2c_hub.replicate.archive import known_revisions

EARLIER = known_revisions("sqlite://")[:-1]
# the tables worked out from the sessions (rollups, and the prices they were costed at)
DERIVED = ("usage_", "cost_", "use_")


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """A full history at the latest schema: its rows, and its tables."""
    url = f"sqlite:///{tmp_path_factory.mktemp('history') / 'latest.sqlite'}"
    upgrade(url)
    fill(url)
    return every_row(url), tables_at(url)


def tables_at(url: str) -> dict:
    engine = make_engine(url)
    with engine.connect() as connection:
        metadata = MetaData()
        metadata.reflect(connection)
    engine.dispose()
    return {t.name: t for t in metadata.sorted_tables if t.name != "alembic_version"}


def as_of(rows: dict[str, list[tuple]], latest: dict, then: dict) -> dict[str, list[dict]]:
    """The history as a database at an earlier revision can hold it: its tables, its
    columns; what it has no column for reads as the latest schema's default."""
    held = {}
    for name, table in latest.items():
        if name not in then or not rows.get(name):
            continue
        names = list(table.columns.keys())
        missing = set(then[name].columns.keys()) - set(names)
        assert not missing, f"{name} had columns the latest schema dropped: {missing}"
        defaults = {}
        for column in table.columns:
            if column.name not in then[name].columns:
                assert column.nullable or column.server_default is not None, f"{name}.{column.name}: no default"
                defaults[column.name] = None if column.nullable else False  # (the one such column is a flag)
        held[name] = [{**dict(zip(names, row, strict=True)), **defaults} for row in rows[name]]
    return held


def write(url: str, held: dict[str, list[dict]]) -> None:
    tables = tables_at(url)
    engine = make_engine(url)
    with engine.begin() as connection:
        for name, table in tables.items():
            if held.get(name):
                keys = table.columns.keys()
                connection.execute(insert(table), [{k: r[k] for k in keys} for r in held[name]])
    engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("revision", EARLIER)
def test_a_database_from_an_earlier_revision_upgrades_with_its_data(revision, database_url, history, tmp_path):
    rows, latest = history
    url = database_url  # an empty database of each kind: taken down to nothing, then built at `revision`
    engine = make_engine(url)
    with engine.begin() as connection:
        metadata = MetaData()
        metadata.reflect(connection)
        metadata.drop_all(connection)
    engine.dispose()
    upgrade(url, revision)
    held = as_of(rows, latest, tables_at(url))
    write(url, held)
    upgrade(url)
    # the truth: the same raw history at the latest revision, nothing rolled up, so that
    # every report is worked out from the sessions themselves
    reference = f"sqlite:///{tmp_path / 'reference.sqlite'}"
    upgrade(reference)
    raw = {name: rows for name, rows in held.items() if not name.startswith(DERIVED)}
    raw["sessions"] = [{**r, "rolled_up": False, "cost_rolled_up": False} for r in raw["sessions"]]
    write(reference, raw)

    after = every_row(url)
    for table in ("sessions", "session_groups", "group_memberships"):
        assert len(after[table]) == len(rows[table]), table
    got, wanted = reports(url), reports(reference)
    assert got.keys() == wanted.keys()
    for key, value in wanted.items():
        if isinstance(value, dict):
            assert got[key].keys() == value.keys(), (revision, key)
            for name, figures in value.items():
                assert got[key][name] == pytest.approx(figures, rel=1e-9, abs=1e-9), (revision, key, name)
        else:
            assert got[key] == value, (revision, key)


def schema(url: str) -> dict:
    """Every table's columns, keys, indexes and constraints, as the database reports them."""
    engine = make_engine(url)
    with engine.connect() as connection:
        seen = inspect(connection)
        tables = {
            name: {
                "columns": [
                    (c["name"], str(c["type"]), c["nullable"], str(c.get("default")).strip("'"))
                    for c in seen.get_columns(name)
                ],  # in the same order: rows read by position compare equal
                "primary_key": seen.get_pk_constraint(name)["constrained_columns"],
                "foreign_keys": sorted(
                    (tuple(f["constrained_columns"]), f["referred_table"], f.get("options", {}).get("ondelete"))
                    for f in seen.get_foreign_keys(name)
                ),
                "indexes": sorted(
                    (i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in seen.get_indexes(name)
                ),
                "unique": sorted(tuple(u["column_names"]) for u in seen.get_unique_constraints(name)),
            }
            for name in seen.get_table_names()
        }
        version = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
    engine.dispose()
    return {"tables": tables, "version": version}


def test_a_new_database_made_in_one_step_is_the_one_the_migrations_make(tmp_path, request, database_url):
    """An empty database is created at the latest schema at once (create and stamp); the
    same schema, revision included, as running every migration one after the other."""
    if database_url.startswith("sqlite"):
        stepwise = f"sqlite:///{tmp_path / 'stepwise.sqlite'}"
    else:
        stepwise = request.getfixturevalue("postgres_server").new_database()
    command.upgrade(alembic_config(stepwise), "head")  # every migration
    made, migrated = schema(database_url), schema(stepwise)
    assert made["version"] == migrated["version"] == [known_revisions(database_url)[-1]]
    assert made["tables"].keys() == migrated["tables"].keys() and len(made["tables"]) > 10
    for name, table in made["tables"].items():
        assert table == migrated["tables"][name], name
    # and the models hold nothing the migrations do not make
    engine = make_engine(stepwise)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_server_default": True})
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_services_starting_at_once_on_a_new_database_make_it_once_without_migrating(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'usage.sqlite'}"
    head = known_revisions(url)[-1]

    def only_when_done(config, revision):  # the later ones find the work done
        assert schema(url)["version"] == [head], "a new database was migrated step by step"

    monkeypatch.setattr(command, "upgrade", only_when_done)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: upgrade(url), range(4)))
    assert schema(url)["version"] == [known_revisions(url)[-1]]
