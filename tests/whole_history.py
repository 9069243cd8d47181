"""A hub's whole history, with every kind of row the accounting database holds, and the
ways to read all of it back (every row, every report, JupyterHub's own people): what an
export, an import, an upgrade or forgetting a person is checked against."""

import io
import tarfile

from cost_figures import NOW, PRICING, T0, random_sessions, record_all
from sqlalchemy import select

from twoi2c_hub.accounting.activity import active_users, sessions
from twoi2c_hub.accounting.bills import store_bill
from twoi2c_hub.accounting.cost_reports import cost
from twoi2c_hub.accounting.costs import CostBasis, SessionCoster, roll_up_costs
from twoi2c_hub.accounting.db import make_engine, session_maker
from twoi2c_hub.accounting.events import GroupsChanged
from twoi2c_hub.accounting.models import DAY_MS, HOUR_MS, BudgetNotice, LedgerEntry, ServerSession, SessionUse
from twoi2c_hub.accounting.recording import record
from twoi2c_hub.accounting.reports import usage
from twoi2c_hub.accounting.rollups import roll_up
from twoi2c_hub.accounting.spending import UNITS, PersonHistory
from twoi2c_hub.accounting.storage import record_home_sizes
from twoi2c_hub.accounting.use import efficiency
from twoi2c_hub.replicate.archive import accounting_tables

BASIS = CostBasis(PRICING)
# an anonymised hub's names (as the authenticators write them) must travel unchanged
ANONYMOUS = "anon-3f9a1c2e"


def fill(url):
    """A history with every kind of row: sessions (part rolled up, two in three measured),
    memberships, costs, the ledger, a notice, a bill and home storage."""
    engine = make_engine(url)
    with session_maker(engine)() as db:
        history = random_sessions(count=300)
        history[0][0].username = ANONYMOUS
        record_all(db, history)
        record(db, [GroupsChanged("user1", T0 + DAY_MS, added=frozenset({"staff"}))])
        for session in db.scalars(select(ServerSession).where(ServerSession.id % 3 != 0)):
            ends = session.stopped_ms or NOW
            measured = (ends - session.started_ms) * 4 // 5
            db.add(SessionUse(session_id=session.id, samples=3, first_sample_ms=session.started_ms,
                              last_sample_ms=ends, measured_ms=measured, cpu_core_ms=0.3 * measured,
                              cpu_seconds_at_last=0.3 * measured / 1000, cpu_peak_cores=1.2,
                              mem_byte_ms=1.5 * 2**30 * measured, mem_peak_bytes=2 * 2**30))  # fmt: skip
        roll_up(db, T0 + 6 * DAY_MS)  # half the history rolled up, half raw
        roll_up_costs(db, BASIS, T0 + 6 * DAY_MS)
        db.add(LedgerEntry(budget="students", subject="user2", kind="top_up", amount=5.0, until_ms=None,
                           at_ms=T0 + 2 * DAY_MS, by="admin", reason="a second project"))  # fmt: skip
        db.add(BudgetNotice(budget="students", subject="user2", period_start_ms=T0, kind="warn", at_ms=T0 + DAY_MS))
        db.commit()
        store_bill(db, "aws", {(T0 // DAY_MS, "AmazonEC2"): 12.5, (T0 // DAY_MS + 1, "AmazonEBS"): 0.75}, "USD", NOW)
        record_home_sizes(db, {"user1": 3 * 2**30, ANONYMOUS: 2**30}, T0 + 3 * DAY_MS)
        db.commit()
    engine.dispose()


def every_row(url) -> dict[str, list[tuple]]:
    engine = make_engine(url)
    with engine.connect() as connection:
        rows = {}
        for table in accounting_tables(connection):
            order = list(table.primary_key.columns) or list(table.columns)
            rows[table.name] = [tuple(r) for r in connection.execute(select(table).order_by(*order))]
    engine.dispose()
    return rows


def reports(url) -> dict:
    """Every report the services show, as data."""
    engine = make_engine(url)
    out = {}
    with session_maker(engine)() as db:
        for a, b in ((T0, NOW), (T0 + 5 * HOUR_MS, T0 + 9 * DAY_MS + 7 * HOUR_MS), (T0 + 8 * DAY_MS, NOW)):
            for aggregate in ("user", "group", "profile"):
                out["usage", a, b, aggregate] = dict(usage(db, a, b, aggregate, NOW))
                out["cost", a, b, aggregate] = dict(cost(db, BASIS, a, b, aggregate, NOW))
                out["efficiency", a, b, aggregate] = {row.pop("name"): row for row in efficiency(db, a, b, aggregate)}
            out["active", a, b] = active_users(db, a, b, NOW)
        out["sessions"] = sessions(db, start_ms=T0, end_ms=NOW, limit=1000)
        coster = SessionCoster(BASIS)
        for username in ("user1", "user2", ANONYMOUS):
            out["spending", username] = PersonHistory(db, coster, username, T0, NOW, frozenset(UNITS)).spent(
                T0 + DAY_MS
            )
    engine.dispose()
    return out


def hub_database(url, people=()) -> dict[str, tuple]:
    """JupyterHub's own database: with `people` (name, admin, groups) added; its people."""
    from jupyterhub import orm

    db = orm.new_session_factory(url)()
    groups = {}
    for name, admin, member_of in people:
        user = orm.User(name=name, admin=admin)
        for group in member_of:
            if group not in groups:
                groups[group] = orm.Group(name=group, properties={"course": group.upper()})
                db.add(groups[group])
            user.groups.append(groups[group])
        db.add(user)
    db.commit()
    found = {
        u.name: (u.admin, sorted(g.name for g in u.groups), sorted(str(g.properties) for g in u.groups))
        for u in db.query(orm.User)
    }
    db.close()
    return found


def tampered(archive, out, change):
    """A copy of `archive` with `change(name, data) -> data` applied to each member."""
    with tarfile.open(archive) as source, tarfile.open(out, "w") as target:
        for info in source:
            data = change(info.name, source.extractfile(info).read())
            info.size = len(data)
            target.addfile(info, io.BytesIO(data))
    return out
