"""home directory sizes per person and day, for home storage cost

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "home_usage",
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=255), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", "username"),
    )
    op.create_index("home_usage_by_user", "home_usage", ["username", "day"])


def downgrade():
    op.drop_index("home_usage_by_user", "home_usage")
    op.drop_table("home_usage")
