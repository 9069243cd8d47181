"""Right to Replicate: a hub's whole history exported to one archive and imported into a
fresh install, SQLite to PostgreSQL and back, gives the same reports; a bad archive is
refused and leaves nothing behind; the config travels without its secrets."""

import io
import json
import tarfile

import pytest
import yaml
from cost_figures import NOW
from sqlalchemy import inspect, select
from whole_history import ANONYMOUS, every_row, fill, hub_database, reports, tampered

from twoi2c_hub.accounting.db import make_engine, session_maker, upgrade
from twoi2c_hub.accounting.models import Base, ServerSession
from twoi2c_hub.cli import main as cli
from twoi2c_hub.replicate.archive import FORMAT_VERSION, MANIFEST, export
from twoi2c_hub.replicate.restore import ArchiveError, existing_rows, restore
from twoi2c_hub.replicate.secrets import redacted


def assert_same_reports(before, after):
    """Field by field; figures summed by another database may differ in the last bits."""
    assert before.keys() == after.keys()
    for key, value in before.items():
        if isinstance(value, dict):
            assert after[key].keys() == value.keys(), key
            for name, figures in value.items():
                assert after[key][name] == pytest.approx(figures, rel=1e-9, abs=1e-9), (key, name)
        else:
            assert after[key] == value, key


@pytest.fixture
def other_database(database_url, tmp_path, postgres_server):
    """An empty database of the other kind: PostgreSQL for SQLite and the other way."""
    if database_url.startswith("sqlite"):
        return postgres_server.new_database()
    return f"sqlite:///{tmp_path / 'imported.sqlite'}"


def test_export_then_import_into_the_other_database_gives_the_same_reports(database_url, other_database, tmp_path):
    fill(database_url)
    config = tmp_path / "community.yaml"
    config.write_text(f"hub: {{name: Moved}}\nusage: {{database_url: '{database_url}'}}\n")
    archive = tmp_path / "hub.tar"
    hub_db = f"sqlite:///{tmp_path / 'jupyterhub.sqlite'}"
    people = hub_database(hub_db, [("admin", True, []), ("user1", False, ["students", "staff"]),
                                   (ANONYMOUS, False, ["students"]), ("nobody-ran-a-server", False, [])])  # fmt: skip
    command = ["export", "--config", str(config), "--url", database_url, "--out", str(archive), "--hub-db", hub_db]
    assert cli(command) == 0

    manifest = json.load(tarfile.open(archive).extractfile(MANIFEST))
    counts = {m["table"]: m["rows"] for m in manifest["tables"]}
    assert counts["sessions"] == 300 and counts["session_groups"] > 0 and counts["usage_daily_user"] > 0
    assert counts["budget_ledger"] == counts["budget_notices"] == 1 and counts["bill_lines"] == 2

    new_hub_db = f"sqlite:///{tmp_path / 'new-jupyterhub.sqlite'}"
    command = ["import", str(archive), "--url", other_database, "--extract-config", str(tmp_path / "in.yaml")]
    assert cli([*command, "--hub-db", new_hub_db]) == 0
    assert every_row(other_database) == every_row(database_url)
    assert hub_database(new_hub_db) == people  # the hub's people, admins and groups too
    assert_same_reports(reports(database_url), reports(other_database))
    assert yaml.safe_load((tmp_path / "in.yaml").read_text())["hub"]["name"] == "Moved"
    # the imported database takes new sessions after the imported ones (PostgreSQL's sequences)
    engine = make_engine(other_database)
    with session_maker(engine)() as db:
        db.add(ServerSession(username="new", server_name="", started_ms=NOW, gpu_count=0, source="event"))
        db.commit()
        assert db.scalar(select(ServerSession.id).where(ServerSession.username == "new")) == 301
        assert ANONYMOUS in {s.username for s in db.scalars(select(ServerSession))}
    engine.dispose()


@pytest.fixture
def archive(tmp_path):
    source = f"sqlite:///{tmp_path / 'source.sqlite'}"
    upgrade(source)
    fill(source)
    path = tmp_path / "hub.tar"
    export(source, None, path)
    return path


def assert_refused_and_empty(archive, url, message):
    with pytest.raises(ArchiveError, match=message):
        restore(archive, url)
    engine = make_engine(url)
    with engine.connect() as connection:
        assert existing_rows(connection) == {}
        # and the schema is a new install's, every index there
        for table in Base.metadata.sorted_tables:
            wanted = {index.name for index in table.indexes}
            assert wanted <= {i["name"] for i in inspect(connection).get_indexes(table.name)}, table.name
    engine.dispose()


def test_a_truncated_archive_is_refused_and_nothing_is_written(archive, database_url, tmp_path):
    data = archive.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    assert_refused_and_empty(cut, database_url, "damaged or truncated|ends early")


def test_a_changed_row_is_refused_by_its_checksum(archive, database_url, tmp_path):
    def change(name, data):
        return data.replace(b"user3", b"user4", 1) if name == "tables/sessions.jsonl" else data

    assert_refused_and_empty(tampered(archive, tmp_path / "t.tar", change), database_url, "do not match the manifest")


def test_an_archive_from_a_newer_twoi2c_hub_is_refused(archive, database_url, tmp_path):
    def newer(name, data):
        if name != MANIFEST:
            return data
        manifest = json.loads(data)
        manifest["format_version"] = FORMAT_VERSION + 1
        return json.dumps(manifest).encode()

    assert_refused_and_empty(tampered(archive, tmp_path / "n.tar", newer), database_url, "newer twoi2c-hub")

    def newer_schema(name, data):
        if name != MANIFEST:
            return data
        return json.dumps({**json.loads(data), "schema_revision": "9999_from_the_future"}).encode()

    assert_refused_and_empty(tampered(archive, tmp_path / "s.tar", newer_schema), database_url, "schema")
    not_ours = tmp_path / "other.tar"
    with tarfile.open(not_ours, "w") as tar:
        tar.addfile(tarfile.TarInfo("README"), io.BytesIO(b""))
    assert_refused_and_empty(not_ours, database_url, "not a twoi2c-hub archive")


def test_a_database_with_data_is_not_imported_into(archive, database_url):
    fill(database_url)
    before = every_row(database_url)
    with pytest.raises(ArchiveError, match="already has data"):
        restore(archive, database_url)
    assert every_row(database_url) == before


def test_the_config_travels_without_its_secrets(capsys, tmp_path):
    text = """
hub: {name: X}
auth: {provider: github, client_id: abc, client_secret_env: GITHUB_SECRET, allowed_organizations: [org]}
usage: {database_url: "postgresql+psycopg://hub:s3cr3t@db.example.org/usage"}
budgets:
  budgets: []
  alerts: {webhook: {url: "https://hooks.example.org/T000/B000/XXXX"}}
"""
    clean, needed = redacted(text)
    assert "s3cr3t" not in clean and "hooks.example.org" not in clean
    data = yaml.safe_load(clean)
    assert data["usage"]["database_url"] == "postgresql+psycopg://hub@db.example.org/usage"
    assert data["auth"]["client_secret_env"] == "GITHUB_SECRET"
    assert {n["setting"] for n in needed} == {
        "auth.client_secret_env",
        "usage.database_url",
        "budgets.alerts.webhook.url",
    }
    # and the command says what the new operator must provide
    config = tmp_path / "c.yaml"
    config.write_text(text)
    url = f"sqlite:///{tmp_path / 'u.sqlite'}"
    upgrade(url)
    assert cli(["export", "--config", str(config), "--url", url, "--out", str(tmp_path / "a.tar")]) == 0
    printed = capsys.readouterr().out
    assert "auth.client_secret_env ($GITHUB_SECRET)" in printed and "the database password" in printed
    member = tarfile.open(tmp_path / "a.tar").extractfile("community.yaml").read().decode()
    assert "s3cr3t" not in member


def test_the_archive_format_is_plain_json_lines(archive):
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile(MANIFEST))
        first = tar.extractfile("tables/sessions.jsonl").readline()
    assert names[0] == MANIFEST
    assert manifest["format"] == "twoi2c-hub-archive" and manifest["format_version"] == FORMAT_VERSION
    sessions_member = next(m for m in manifest["tables"] if m["table"] == "sessions")
    row = dict(zip(sessions_member["columns"], json.loads(first), strict=True))
    assert row["id"] == 1 and isinstance(row["rolled_up"], bool)
    assert set(names) == {MANIFEST} | {m["name"] for m in manifest["tables"]}
    assert {m["table"] for m in manifest["tables"]} == {t.name for t in Base.metadata.sorted_tables}
