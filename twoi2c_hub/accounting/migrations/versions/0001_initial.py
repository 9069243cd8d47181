"""sessions, group membership and daily rollups

Revision ID: 0001
Revises: 
Create Date: 2026-11-26 07:44:50.345261
"""

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('group_memberships',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=255), nullable=False),
    sa.Column('group_name', sa.String(length=255), nullable=False),
    sa.Column('since_ms', sa.BigInteger(), nullable=False),
    sa.Column('until_ms', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('group_memberships', schema=None) as batch_op:
        batch_op.create_index('memberships_by_user', ['username', 'group_name', 'until_ms'], unique=False)

    op.create_table('sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=255), nullable=False),
    sa.Column('server_name', sa.String(length=255), nullable=False),
    sa.Column('profile', sa.String(length=255), nullable=True),
    sa.Column('choices', sa.Text(), nullable=True),
    sa.Column('image', sa.Text(), nullable=True),
    sa.Column('cpu_guarantee', sa.Float(), nullable=True),
    sa.Column('cpu_limit', sa.Float(), nullable=True),
    sa.Column('mem_guarantee_bytes', sa.BigInteger(), nullable=True),
    sa.Column('mem_limit_bytes', sa.BigInteger(), nullable=True),
    sa.Column('gpu_count', sa.Integer(), nullable=False),
    sa.Column('gpu_type', sa.String(length=255), nullable=True),
    sa.Column('started_ms', sa.BigInteger(), nullable=False),
    sa.Column('stopped_ms', sa.BigInteger(), nullable=True),
    sa.Column('duration_ms', sa.BigInteger(), nullable=True),
    sa.Column('stop_reason', sa.String(length=32), nullable=True),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('seen_ms', sa.BigInteger(), nullable=True),
    sa.Column('rolled_up', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('username', 'server_name', 'started_ms', name='one_session_per_start')
    )
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.create_index('sessions_by_duration', ['duration_ms'], unique=False)
        batch_op.create_index('sessions_by_start', ['started_ms'], unique=False)
        batch_op.create_index('sessions_by_user', ['username', 'started_ms'], unique=False)
        batch_op.create_index('sessions_open', ['stopped_ms'], unique=False)
        batch_op.create_index('sessions_unrolled', ['rolled_up', 'started_ms'], unique=False)

    op.create_table('usage_daily_group',
    sa.Column('day', sa.Integer(), nullable=False),
    sa.Column('group_name', sa.String(length=255), nullable=False),
    sa.Column('sessions', sa.Integer(), nullable=False),
    sa.Column('server_hours', sa.Float(), nullable=False),
    sa.Column('cpu_core_hours', sa.Float(), nullable=False),
    sa.Column('memory_gib_hours', sa.Float(), nullable=False),
    sa.Column('gpu_hours', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'group_name'),
    sqlite_with_rowid=False
    )
    op.create_table('usage_daily_profile',
    sa.Column('day', sa.Integer(), nullable=False),
    sa.Column('profile', sa.String(length=255), nullable=False),
    sa.Column('sessions', sa.Integer(), nullable=False),
    sa.Column('server_hours', sa.Float(), nullable=False),
    sa.Column('cpu_core_hours', sa.Float(), nullable=False),
    sa.Column('memory_gib_hours', sa.Float(), nullable=False),
    sa.Column('gpu_hours', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'profile'),
    sqlite_with_rowid=False
    )
    op.create_table('usage_daily_user',
    sa.Column('day', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=255), nullable=False),
    sa.Column('sessions', sa.Integer(), nullable=False),
    sa.Column('server_hours', sa.Float(), nullable=False),
    sa.Column('cpu_core_hours', sa.Float(), nullable=False),
    sa.Column('memory_gib_hours', sa.Float(), nullable=False),
    sa.Column('gpu_hours', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'username'),
    sqlite_with_rowid=False
    )
    op.create_table('session_groups',
    sa.Column('session_id', sa.Integer(), nullable=False),
    sa.Column('group_name', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('session_id', 'group_name')
    )
    with op.batch_alter_table('session_groups', schema=None) as batch_op:
        batch_op.create_index('session_groups_by_group', ['group_name'], unique=False)



def downgrade():
    with op.batch_alter_table('session_groups', schema=None) as batch_op:
        batch_op.drop_index('session_groups_by_group')

    op.drop_table('session_groups')
    op.drop_table('usage_daily_user')
    op.drop_table('usage_daily_profile')
    op.drop_table('usage_daily_group')
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_index('sessions_unrolled')
        batch_op.drop_index('sessions_open')
        batch_op.drop_index('sessions_by_user')
        batch_op.drop_index('sessions_by_start')
        batch_op.drop_index('sessions_by_duration')

    op.drop_table('sessions')
    with op.batch_alter_table('group_memberships', schema=None) as batch_op:
        batch_op.drop_index('memberships_by_user')

    op.drop_table('group_memberships')
