"""Market sources (O6): other Mercato stores mirrored read-only through their sync feed.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import mercato.kit.types

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('market_sources',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('cursor', sa.String(length=200), nullable=True),
    sa.Column('etag', sa.String(length=200), nullable=True),
    sa.Column('last_synced_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_success_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('failure_count', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('health', sa.String(length=16), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_market_sources')),
    sa.UniqueConstraint('url', name=op.f('uq_market_sources_url'))
    )
    op.create_table('mirrored_listings',
    sa.Column('source_id', sa.Uuid(), nullable=False),
    sa.Column('remote_id', sa.Uuid(), nullable=False),
    sa.Column('slug', sa.String(length=200), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('updated_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['source_id'], ['market_sources.id'], name=op.f('fk_mirrored_listings_source_id_market_sources'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mirrored_listings')),
    sa.UniqueConstraint('source_id', 'remote_id', name=op.f('uq_mirrored_listings_source_id_remote_id'))
    )
    op.create_index('ix_mirrored_listings_browse', 'mirrored_listings', ['updated_at', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_mirrored_listings_browse', table_name='mirrored_listings')
    op.drop_table('mirrored_listings')
    op.drop_table('market_sources')
