"""History and sync: per-user operation history (O2), the compacted catalog change feed
and its counters (S1).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import mercato.kit.types

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('history_entries',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('listing_id', sa.Uuid(), nullable=True),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('occurred_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_history_entries_user_id_users'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_history_entries')),
    sa.UniqueConstraint('user_id', 'event_id', name=op.f('uq_history_entries_user_id_event_id'))
    )
    op.create_index('ix_history_entries_occurred_at', 'history_entries', ['occurred_at'], unique=False)
    op.create_index('ix_history_entries_timeline', 'history_entries', ['user_id', 'occurred_at', 'id'], unique=False)
    op.create_table('catalog_changes',
    sa.Column('listing_id', sa.Uuid(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=True),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('body', sa.Text(), nullable=True),
    sa.Column('changed_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('listing_id', name=op.f('pk_catalog_changes')),
    sa.UniqueConstraint('seq', name=op.f('uq_catalog_changes_seq'))
    )
    counters = op.create_table('sync_counters',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_sync_counters'))
    )
    op.bulk_insert(counters, [{'name': 'catalog', 'value': 0}, {'name': 'catalog.horizon', 'value': 0}])


def downgrade() -> None:
    op.drop_table('sync_counters')
    op.drop_table('catalog_changes')
    op.drop_index('ix_history_entries_timeline', table_name='history_entries')
    op.drop_index('ix_history_entries_occurred_at', table_name='history_entries')
    op.drop_table('history_entries')
