"""Upgrading a database made at every earlier schema revision, full of data, on SQLite and
PostgreSQL: nothing is lost, and every report reads the same as on a database made at the
latest revision from the same history."""

import pytest
from sqlalchemy import MetaData, insert
from test_replicate import every_row, fill, reports

from twoi2c_hub.accounting.db import make_engine, upgrade
from twoi2c_hub.replicate.archive import known_revisions

EARLIER = known_revisions("sqlite://")[:-1]
# the tables worked out from the sessions (rollups, and the prices they were costed at)
DERIVED = ("usage_", "cost_")


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
