"""the fleet's database: each hub's collection state, its people's digests by day, its months

Revision ID: f0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "f0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "fleet_hubs",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("attempted_ms", sa.BigInteger),
        sa.Column("collected_ms", sa.BigInteger),
        sa.Column("error", sa.Text),
        sa.Column("final_day", sa.Integer),
    )
    op.create_table(
        "fleet_people",
        sa.Column("hub", sa.String(100), primary_key=True),
        sa.Column("day", sa.Integer, primary_key=True),
        sa.Column("digest", sa.String(32), primary_key=True),
    )
    op.create_index("fleet_people_by_day", "fleet_people", ["day", "hub"])
    op.create_table(
        "fleet_hub_months",
        sa.Column("hub", sa.String(100), primary_key=True),
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("attributed_cost", sa.Float, nullable=False),
        sa.Column("fee", sa.Float, nullable=False),
        sa.Column("bill", sa.Float),
        sa.Column("as_of_ms", sa.BigInteger, nullable=False),
    )


def downgrade():
    op.drop_table("fleet_hub_months")
    op.drop_index("fleet_people_by_day", "fleet_people")
    op.drop_table("fleet_people")
    op.drop_table("fleet_hubs")
