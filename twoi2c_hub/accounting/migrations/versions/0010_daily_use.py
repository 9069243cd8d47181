"""measured use rolled up daily per user and profile and per user and group (and instance
type, whose price puts one on what was reserved but not used); every usage rollup rebuilt
(issue 26)

The efficiency report reads whole UTC days from these instead of every measured session.
They are filled as the usage rollups are, by the same pass over closed sessions, so the
usage rollups are emptied and every closed session marked not rolled up: the usage
service rebuilds both at its next reconciliation (as 0007 did). Until then reports read
the sessions themselves, and give the same figures.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

USE = ["measured_ms", "cpu_core_ms", "cpu_reserved_core_ms", "mem_byte_ms", "mem_reserved_byte_ms"]
USAGE_ROLLUPS = [
    "usage_daily_user",
    "usage_daily_group",
    "usage_daily_profile",
    "usage_daily_user_profile",
    "usage_daily_user_group",
    "usage_monthly_user",
]


def upgrade():
    for table, name in (("use_daily_user_profile", "profile"), ("use_daily_user_group", "group_name")):
        op.create_table(
            table,
            sa.Column("day", sa.Integer(), nullable=False),
            sa.Column("username", sa.String(length=255), nullable=False),
            sa.Column(name, sa.String(length=255), nullable=False),
            sa.Column("instance_type", sa.String(length=255), nullable=False),
            sa.Column("sessions", sa.Integer(), nullable=False),
            *(sa.Column(figure, sa.Float(), nullable=False) for figure in USE),
            sa.PrimaryKeyConstraint("day", "username", name, "instance_type"),
            sqlite_with_rowid=False,
        )
    op.create_index("use_user_profile_by_user", "use_daily_user_profile", ["username", "day"])
    op.create_index("use_user_group_by_user", "use_daily_user_group", ["username", "day"])
    for table in USAGE_ROLLUPS:
        op.execute(sa.text(f"DELETE FROM {table}"))
    op.execute(sa.text("UPDATE sessions SET rolled_up = :no").bindparams(no=False))


def downgrade():
    op.drop_index("use_user_group_by_user", "use_daily_user_group")
    op.drop_index("use_user_profile_by_user", "use_daily_user_profile")
    op.drop_table("use_daily_user_group")
    op.drop_table("use_daily_user_profile")
