"""monthly usage and cost per user; every rollup rebuilt

Reports over whole calendar months (last month by person) read one row per person and
month. The daily usage rollups are emptied and every closed session marked not rolled up,
so the usage service rebuilds them, the monthly ones included, at its next reconciliation;
the cost basis is forgotten, so the cost service recomputes every cost rollup at start.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

USAGE = ["sessions", "server_hours", "cpu_core_hours", "memory_gib_hours", "gpu_hours"]
COST = ["cpu_cost", "ram_cost", "gpu_cost", "unpriced_hours"]


def upgrade():
    op.create_table(
        "usage_monthly_user",
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=255), nullable=False),
        sa.Column("sessions", sa.Integer(), nullable=False),
        *(sa.Column(name, sa.Float(), nullable=False) for name in USAGE[1:]),
        sa.PrimaryKeyConstraint("month", "username"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "cost_monthly_user",
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=255), nullable=False),
        *(sa.Column(name, sa.Float(), nullable=False) for name in COST),
        sa.PrimaryKeyConstraint("month", "username"),
        sqlite_with_rowid=False,
    )
    for table in (
        "usage_daily_user",
        "usage_daily_group",
        "usage_daily_profile",
        "usage_daily_user_profile",
        "usage_daily_user_group",
    ):
        op.execute(sa.text(f"DELETE FROM {table}"))
    op.execute(sa.text("UPDATE sessions SET rolled_up = :no").bindparams(no=False))
    op.execute(sa.text("DELETE FROM cost_basis"))


def downgrade():
    op.drop_table("cost_monthly_user")
    op.drop_table("usage_monthly_user")
