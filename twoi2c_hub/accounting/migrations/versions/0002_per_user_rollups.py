"""daily rollups per user and profile, and per user and group; rollups rebuilt

One person's reports read these instead of their sessions. The existing rollups are
emptied and every closed session is marked not rolled up, so the service rebuilds all of
them, the new ones included, at its next reconciliation (the same figures, recomputed).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None



def figures():
    return [
        sa.Column("sessions", sa.Integer(), nullable=False),
        sa.Column("server_hours", sa.Float(), nullable=False),
        sa.Column("cpu_core_hours", sa.Float(), nullable=False),
        sa.Column("memory_gib_hours", sa.Float(), nullable=False),
        sa.Column("gpu_hours", sa.Float(), nullable=False),
    ]


def upgrade():
    op.create_table(
        "usage_daily_user_profile",
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=255), nullable=False),
        sa.Column("profile", sa.String(length=255), nullable=False),
        *figures(),
        sa.PrimaryKeyConstraint("day", "username", "profile"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "usage_daily_user_group",
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=255), nullable=False),
        sa.Column("group_name", sa.String(length=255), nullable=False),
        *figures(),
        sa.PrimaryKeyConstraint("day", "username", "group_name"),
        sqlite_with_rowid=False,
    )
    for table in ("usage_daily_user", "usage_daily_group", "usage_daily_profile"):
        op.execute(sa.text(f"DELETE FROM {table}"))
    op.execute(sa.text("UPDATE sessions SET rolled_up = :no").bindparams(no=False))


def downgrade():
    op.drop_table("usage_daily_user_group")
    op.drop_table("usage_daily_user_profile")
