"""the budget ledger (top-ups and extensions) and notices said once per period

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "budget_ledger",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("budget", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("until_ms", sa.BigInteger(), nullable=True),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("by", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ledger_by_budget", "budget_ledger", ["budget", "subject", "at_ms"])
    op.create_table(
        "budget_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("budget", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("period_start_ms", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("budget", "subject", "period_start_ms", "kind", name="one_notice_per_period"),
    )


def downgrade():
    op.drop_table("budget_notices")
    op.drop_index("ledger_by_budget", "budget_ledger")
    op.drop_table("budget_ledger")
