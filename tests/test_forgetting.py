"""Forgetting a person, and the retention period: their name is gone from every row, and
every report's figures stay where they were (on SQLite and PostgreSQL)."""

import pytest
from cost_figures import NOW, T0
from sqlalchemy import select
from whole_history import ANONYMOUS, BASIS, every_row, fill

from twoi2c_hub.accounting.cost_reports import cost
from twoi2c_hub.accounting.db import make_engine, session_maker
from twoi2c_hub.accounting.forgetting import PREFIX, expire
from twoi2c_hub.accounting.models import DAY_MS, ServerSession
from twoi2c_hub.accounting.reports import usage
from twoi2c_hub.cli import main as cli

WINDOWS = [(T0, NOW), (T0 + 3 * DAY_MS + 5, T0 + 9 * DAY_MS + 7), (T0 + 8 * DAY_MS, NOW)]


def figures(url):
    engine = make_engine(url)
    out = {}
    with session_maker(engine)() as db:
        for a, b in WINDOWS:
            for aggregate in ("user", "group", "profile"):
                out["usage", a, b, aggregate] = dict(usage(db, a, b, aggregate, NOW))
                out["cost", a, b, aggregate] = dict(cost(db, BASIS, a, b, aggregate, NOW))
    engine.dispose()
    return out


def assert_close(actual: dict, wanted: dict, key):
    assert actual.keys() == wanted.keys(), key
    for name, value in wanted.items():
        assert actual[name] == pytest.approx(value, abs=1e-9), (key, name)


def totals(report: dict) -> list[float]:
    return [sum(column) for column in zip(*report.values(), strict=True)] if report else []


def names_in(url) -> set[str]:
    """Every value of every column that holds a person's name."""
    found = set()
    for rows in every_row(url).values():
        for row in rows:
            found |= {v for v in row if isinstance(v, str) and (v.startswith(("user", PREFIX)) or v == ANONYMOUS)}
    return found


def test_a_forgotten_person_leaves_no_name_and_every_figure_in_place(database_url):
    fill(database_url)
    before = figures(database_url)
    assert "user1" in names_in(database_url)
    assert cli(["forget", "user1", "--url", database_url]) == 0
    assert "user1" not in names_in(database_url)
    [pseudonym] = {n for n in names_in(database_url) if n.startswith(PREFIX)}
    after = figures(database_url)
    for key, report in before.items():
        if key[-1] == "user":  # the same figures, under the pseudonym
            renamed = {pseudonym if name == "user1" else name: value for name, value in report.items()}
            assert_close(after[key], renamed, key)
        else:
            assert_close(after[key], report, key)


def test_the_retention_period_unnames_old_rows_and_keeps_every_total(database_url):
    fill(database_url)
    before = figures(database_url)
    cutoff = T0 + 6 * DAY_MS
    engine = make_engine(database_url)
    with session_maker(engine)() as db:
        old = {s.username for s in db.scalars(select(ServerSession).where(ServerSession.stopped_ms < cutoff))}
        recent = {s.username for s in db.scalars(select(ServerSession).where(ServerSession.started_ms >= cutoff))}
        people = expire(db, cutoff)
        assert people >= len(old) > 0
        assert expire(db, cutoff) == 0  # nothing left to unname
        # old sessions carry pseudonyms, one per person; recent ones keep their names
        old_names = {s.username for s in db.scalars(select(ServerSession).where(ServerSession.stopped_ms < cutoff))}
        assert all(n.startswith(PREFIX) for n in old_names) and len(old_names) == len(old)
        assert recent <= {
            s.username for s in db.scalars(select(ServerSession).where(ServerSession.started_ms >= cutoff))
        }
    engine.dispose()
    after = figures(database_url)
    for key, report in before.items():
        if key[-1] == "user":  # the names change, the totals do not
            assert totals(after[key]) == pytest.approx(totals(report), abs=1e-9), key
        else:
            assert_close(after[key], report, key)


def test_the_usage_service_applies_the_retention_period(tmp_path, monkeypatch):
    from datetime import UTC, datetime

    from twoi2c_hub.accounting.forgetting import months_before
    from twoi2c_hub.services.usage.app import UsageService

    assert months_before(int(datetime(2026, 3, 31, 12, tzinfo=UTC).timestamp() * 1000), 1) == int(
        datetime(2026, 2, 28, 12, tzinfo=UTC).timestamp() * 1000
    )
    url = f"sqlite:///{tmp_path / 'usage.sqlite'}"
    config = tmp_path / "community.yaml"
    config.write_text(f"hub: {{name: X}}\nusage: {{database_url: '{url}', retention_months: 1}}\n")
    service = UsageService(community_config=str(config), database_url=url, reconcile_interval=30)
    fill(url)
    cutoff = T0 + 6 * DAY_MS
    now = int(datetime.fromtimestamp(cutoff / 1000, UTC).replace(month=12).timestamp() * 1000)  # a month later
    assert months_before(now, 1) == cutoff
    assert service.apply_retention(now) > 0
    engine = make_engine(url)
    with session_maker(engine)() as db:
        for started, stopped, username in db.execute(
            select(ServerSession.started_ms, ServerSession.stopped_ms, ServerSession.username)
        ):
            if stopped is not None and stopped < cutoff:
                assert username.startswith(PREFIX)
            elif started >= cutoff:
                assert not username.startswith(PREFIX)
    engine.dispose()
