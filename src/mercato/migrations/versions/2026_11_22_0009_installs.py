"""Installs: instances and their tokens, installations, tasks (PRODUCT I1–I6).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import mercato.kit.types

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('instances',
    sa.Column('owner_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('token_hint', sa.String(length=16), nullable=False),
    sa.Column('platform', sa.String(length=32), nullable=True),
    sa.Column('host_version', sa.String(length=100), nullable=True),
    sa.Column('resources', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('inventory', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('reported_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('corrected_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_instances_owner_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instances')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_instances_token_hash'))
    )
    op.create_index('ix_instances_owner', 'instances', ['owner_id', 'created_at'], unique=False)
    op.create_table('installations',
    sa.Column('instance_id', sa.Uuid(), nullable=False),
    sa.Column('owner_id', sa.Uuid(), nullable=False),
    sa.Column('listing_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('active_name', sa.String(length=64), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('version', sa.String(length=100), nullable=True),
    sa.Column('config', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('auto_upgrade', sa.Boolean(), nullable=False),
    sa.Column('active_task_id', sa.Uuid(), nullable=True),
    sa.Column('notified_version', sa.String(length=100), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['instance_id'], ['instances.id'], name=op.f('fk_installations_instance_id_instances'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['listing_id'], ['listings.id'], name=op.f('fk_installations_listing_id_listings'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_installations_owner_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_installations')),
    sa.UniqueConstraint('instance_id', 'active_name', name=op.f('uq_installations_instance_id_active_name'))
    )
    op.create_index(op.f('ix_installations_instance_id'), 'installations', ['instance_id'], unique=False)
    op.create_index('ix_installations_listing', 'installations', ['listing_id', 'state'], unique=False)
    op.create_index('ix_installations_owner', 'installations', ['owner_id', 'created_at'], unique=False)
    op.create_table('tasks',
    sa.Column('instance_id', sa.Uuid(), nullable=False),
    sa.Column('installation_id', sa.Uuid(), nullable=False),
    sa.Column('owner_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('version_id', sa.Uuid(), nullable=True),
    sa.Column('version', sa.String(length=100), nullable=True),
    sa.Column('from_version', sa.String(length=100), nullable=True),
    sa.Column('from_state', sa.String(length=16), nullable=True),
    sa.Column('progress', sa.Integer(), nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('queued_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('dispatched_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('started_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('deadline_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['installation_id'], ['installations.id'], name=op.f('fk_tasks_installation_id_installations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['instance_id'], ['instances.id'], name=op.f('fk_tasks_instance_id_instances'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_tasks_owner_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tasks'))
    )
    op.create_index('ix_tasks_deadline', 'tasks', ['state', 'deadline_at'], unique=False)
    op.create_index('ix_tasks_installation', 'tasks', ['installation_id', 'state'], unique=False)
    op.create_index('ix_tasks_instance_queue', 'tasks', ['instance_id', 'state', 'queued_at'], unique=False)
    op.create_index('ix_tasks_owner', 'tasks', ['owner_id', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_tasks_owner', table_name='tasks')
    op.drop_index('ix_tasks_instance_queue', table_name='tasks')
    op.drop_index('ix_tasks_installation', table_name='tasks')
    op.drop_index('ix_tasks_deadline', table_name='tasks')
    op.drop_table('tasks')
    op.drop_index('ix_installations_owner', table_name='installations')
    op.drop_index('ix_installations_listing', table_name='installations')
    op.drop_index(op.f('ix_installations_instance_id'), table_name='installations')
    op.drop_table('installations')
    op.drop_index('ix_instances_owner', table_name='instances')
    op.drop_table('instances')
