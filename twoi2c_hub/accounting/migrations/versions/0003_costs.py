"""the instance type of each session, and daily cost rollups

Sessions gain `instance_type` (priced by instance type) and `cost_rolled_up`; the cost
rollups are computed by the cost service from the sessions and the prices in force, and
computed again whenever the prices or the group rule change (`cost_basis`).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def figures():
    return [
        sa.Column("cpu_cost", sa.Float(), nullable=False),
        sa.Column("ram_cost", sa.Float(), nullable=False),
        sa.Column("gpu_cost", sa.Float(), nullable=False),
        sa.Column("unpriced_hours", sa.Float(), nullable=False),
    ]


def upgrade():
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("instance_type", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("cost_rolled_up", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index("sessions_cost_unrolled", "sessions", ["cost_rolled_up", "started_ms"])
    for name, key in (("user_profile", "profile"), ("user_group", "group_name")):
        op.create_table(
            f"cost_daily_{name}",
            sa.Column("day", sa.Integer(), nullable=False),
            sa.Column("username", sa.String(length=255), nullable=False),
            sa.Column(key, sa.String(length=255), nullable=False),
            *figures(),
            sa.PrimaryKeyConstraint("day", "username", key),
            sqlite_with_rowid=False,
        )
        op.create_index(f"cost_{name}_by_user", f"cost_daily_{name}", ["username", "day"])
    op.create_table(
        "cost_basis",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("computed_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade():
    op.drop_table("cost_basis")
    for name in ("user_profile", "user_group"):
        op.drop_index(f"cost_{name}_by_user", f"cost_daily_{name}")
        op.drop_table(f"cost_daily_{name}")
    op.drop_index("sessions_cost_unrolled", "sessions")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("cost_rolled_up")
        batch.drop_column("instance_type")
