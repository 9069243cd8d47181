"""what each session's server used, sampled while it ran: CPU, memory and GPU, averaged
over the sampled time, and the peaks (issue 26)

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "session_use",
        sa.Column("session_id", sa.Integer, sa.ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("samples", sa.Integer, nullable=False),
        sa.Column("first_sample_ms", sa.BigInteger, nullable=False),
        sa.Column("last_sample_ms", sa.BigInteger, nullable=False),
        sa.Column("measured_ms", sa.BigInteger, nullable=False),
        sa.Column("cpu_core_ms", sa.Float, nullable=False),
        sa.Column("cpu_seconds_at_last", sa.Float, nullable=False),
        sa.Column("cpu_peak_cores", sa.Float, nullable=False),
        sa.Column("mem_byte_ms", sa.Float, nullable=False),
        sa.Column("mem_peak_bytes", sa.BigInteger, nullable=False),
        sa.Column("gpu_util_ms", sa.Float),
        sa.Column("gpu_measured_ms", sa.BigInteger),
    )


def downgrade():
    op.drop_table("session_use")
