"""The hub's own people and groups (JupyterHub's database) in an archive: who has an
account, who is an admin, who is in which group, and each group's properties.

Not what belongs to one installation: tokens, cookies, auth state (encrypted with that
hub's key) and servers' state stay behind; people log in again on the new hub.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

USERS = "hub/users.jsonl"
GROUPS = "hub/groups.jsonl"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def read(hub_db_url: str) -> dict[str, bytes]:
    """The members: JSON lines of the hub's groups and users, from its database."""
    from jupyterhub import orm

    db = orm.new_session_factory(hub_db_url)()
    try:
        groups = [
            {"name": g.name, "properties": g.properties or {}} for g in db.query(orm.Group).order_by(orm.Group.name)
        ]
        users = [
            {
                "name": u.name,
                "admin": bool(u.admin),
                "created": _iso(u.created),
                "last_activity": _iso(u.last_activity),
                "groups": sorted(g.name for g in u.groups),
            }
            for u in db.query(orm.User).order_by(orm.User.name)
        ]
    finally:
        db.close()
    return {GROUPS: _lines(groups), USERS: _lines(users)}


def _lines(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()


def reachable(hub_db_url: str) -> None:
    """Connect to the hub's database and let go: SQLAlchemyError if it is out of reach."""
    from sqlalchemy import create_engine

    engine = create_engine(hub_db_url)
    try:
        engine.connect().close()
    finally:
        engine.dispose()


def write(hub_db_url: str, members: dict[str, bytes]) -> int:
    """Add the archive's groups and people to the hub's database (created if new); people
    and groups already there keep theirs, and get the archived memberships added."""
    from jupyterhub import orm

    db = orm.new_session_factory(hub_db_url)()
    try:
        groups = {}
        for row in map(json.loads, members.get(GROUPS, b"").splitlines()):
            group = db.query(orm.Group).filter_by(name=row["name"]).one_or_none()
            if group is None:
                group = orm.Group(name=row["name"], properties=row["properties"])
                db.add(group)
            groups[row["name"]] = group
        count = 0
        for row in map(json.loads, members.get(USERS, b"").splitlines()):
            user = db.query(orm.User).filter_by(name=row["name"]).one_or_none()
            if user is None:
                user = orm.User(name=row["name"], admin=row["admin"])
                if row["created"]:
                    user.created = datetime.fromisoformat(row["created"])
                if row["last_activity"]:
                    user.last_activity = datetime.fromisoformat(row["last_activity"])
                db.add(user)
            for name in row["groups"]:
                group = groups.get(name) or db.query(orm.Group).filter_by(name=name).one()
                if group not in user.groups:
                    user.groups.append(group)
            count += 1
        db.commit()
        return count
    finally:
        db.close()
