"""the fleet's active users counted at collection: each group's daily, weekly and monthly
figure for each day, and what they were counted for (the hubs' placement, the days)

Revision ID: f0002
Revises: f0001
"""

import sqlalchemy as sa
from alembic import op

revision = "f0002"
down_revision = "f0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "fleet_active_users",
        sa.Column("aggregate", sa.String(10), primary_key=True),
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("day", sa.Integer, primary_key=True),
        sa.Column("daily", sa.Integer, nullable=False),
        sa.Column("weekly", sa.Integer, nullable=False),
        sa.Column("monthly", sa.Integer, nullable=False),
    )
    op.create_index("fleet_active_users_by_day", "fleet_active_users", ["aggregate", "day"])
    op.create_table(
        "fleet_counted",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("placement", sa.String(64), nullable=False),
        sa.Column("first_day", sa.Integer, nullable=False),
        sa.Column("last_day", sa.Integer, nullable=False),
    )


def downgrade():
    op.drop_table("fleet_counted")
    op.drop_index("fleet_active_users_by_day", "fleet_active_users")
    op.drop_table("fleet_active_users")
