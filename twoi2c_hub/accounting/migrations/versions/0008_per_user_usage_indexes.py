"""one person's usage rollups found by person: (username, day) indexes, as the cost rollups have

Without them a person's report (and the spawn-time check of a budget in resource-hours)
reads every person's rows of each day in the window.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("usage_user_profile_by_user", "usage_daily_user_profile", ["username", "day"])
    op.create_index("usage_user_group_by_user", "usage_daily_user_group", ["username", "day"])


def downgrade():
    op.drop_index("usage_user_group_by_user", "usage_daily_user_group")
    op.drop_index("usage_user_profile_by_user", "usage_daily_user_profile")
