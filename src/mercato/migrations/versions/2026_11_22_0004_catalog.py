"""Catalog: categories, listings, versions, review tasks, ratings, daily stats, entitlements and
notifications.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
import mercato.kit.types
from sqlalchemy.dialects import postgresql

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('categories',
    sa.Column('slug', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_categories')),
    sa.UniqueConstraint('slug', name=op.f('uq_categories_slug'))
    )
    op.create_table('listings',
    sa.Column('slug', sa.String(length=64), nullable=False),
    sa.Column('publisher_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('status_before_suspension', sa.String(length=24), nullable=True),
    sa.Column('suspension_reason', sa.Text(), nullable=True),
    sa.Column('category_id', sa.Uuid(), nullable=True),
    sa.Column('tags', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('summary', sa.String(length=140), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('homepage', sa.String(length=500), nullable=True),
    sa.Column('license', sa.String(length=100), nullable=True),
    sa.Column('icon_url', sa.String(length=500), nullable=True),
    sa.Column('screenshots', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('digital_price', sa.BigInteger(), nullable=True),
    sa.Column('physical_price', sa.BigInteger(), nullable=True),
    sa.Column('stock', sa.Integer(), nullable=True),
    sa.Column('sort_price', sa.BigInteger(), nullable=False),
    sa.Column('delivery', sa.String(length=16), nullable=False),
    sa.Column('platforms', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('latest_version_id', sa.Uuid(), nullable=True),
    sa.Column('latest_version', sa.String(length=100), nullable=True),
    sa.Column('rating_count', sa.Integer(), nullable=False),
    sa.Column('rating_sum', sa.Integer(), nullable=False),
    sa.Column('rating_average', sa.Double(), nullable=False),
    sa.Column('download_count', sa.BigInteger(), nullable=False),
    sa.Column('install_count', sa.BigInteger(), nullable=False),
    sa.Column('sale_count', sa.BigInteger(), nullable=False),
    sa.Column('published_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['category_id'], ['categories.id'], name=op.f('fk_listings_category_id_categories'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['publisher_id'], ['publishers.id'], name=op.f('fk_listings_publisher_id_publishers'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_listings')),
    sa.UniqueConstraint('slug', name=op.f('uq_listings_slug'))
    )
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_listings_category_id'), ['category_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_listings_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_listings_published_at'), ['published_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_listings_publisher_id'), ['publisher_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_listings_sort_price'), ['sort_price'], unique=False)
        batch_op.create_index(batch_op.f('ix_listings_status'), ['status'], unique=False)

    op.create_table('notifications',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=True),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('link', sa.String(length=500), nullable=True),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('read_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_notifications_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications')),
    sa.UniqueConstraint('user_id', 'event_id', name=op.f('uq_notifications_user_id_event_id'))
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index('ix_notifications_inbox', ['user_id', 'created_at'], unique=False)
        batch_op.create_index('ix_notifications_unread', ['user_id', 'read_at'], unique=False)

    op.create_table('entitlements',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('listing_id', sa.Uuid(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('order_id', sa.Uuid(), nullable=True),
    sa.Column('granted_by', sa.Uuid(), nullable=True),
    sa.Column('granted_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_reason', sa.Text(), nullable=True),
    sa.Column('download_count', sa.Integer(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['listing_id'], ['listings.id'], name=op.f('fk_entitlements_listing_id_listings'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_entitlements_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_entitlements')),
    sa.UniqueConstraint('user_id', 'listing_id', name=op.f('uq_entitlements_user_id_listing_id'))
    )
    with op.batch_alter_table('entitlements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_entitlements_listing_id'), ['listing_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_entitlements_user_id'), ['user_id'], unique=False)

    op.create_table('listing_daily_stats',
    sa.Column('listing_id', sa.Uuid(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('downloads', sa.BigInteger(), nullable=False),
    sa.Column('installs', sa.BigInteger(), nullable=False),
    sa.Column('sales', sa.BigInteger(), nullable=False),
    sa.Column('revenue', sa.BigInteger(), nullable=False),
    sa.Column('ratings', sa.Integer(), nullable=False),
    sa.Column('rating_sum', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['listing_id'], ['listings.id'], name=op.f('fk_listing_daily_stats_listing_id_listings'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('listing_id', 'day', name=op.f('pk_listing_daily_stats'))
    )
    op.create_table('listing_reviews',
    sa.Column('listing_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('rating', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=120), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('hidden', sa.Boolean(), nullable=False),
    sa.Column('hidden_reason', sa.Text(), nullable=True),
    sa.Column('hidden_by', sa.Uuid(), nullable=True),
    sa.Column('reply', sa.Text(), nullable=True),
    sa.Column('reply_by', sa.Uuid(), nullable=True),
    sa.Column('replied_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['listing_id'], ['listings.id'], name=op.f('fk_listing_reviews_listing_id_listings'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_listing_reviews_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_listing_reviews')),
    sa.UniqueConstraint('listing_id', 'user_id', name=op.f('uq_listing_reviews_listing_id_user_id'))
    )
    with op.batch_alter_table('listing_reviews', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_listing_reviews_listing_id'), ['listing_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_listing_reviews_user_id'), ['user_id'], unique=False)

    op.create_table('listing_versions',
    sa.Column('listing_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.String(length=100), nullable=False),
    sa.Column('ordering', sa.String(length=200).with_variant(sa.String(length=200, collation='C'), 'postgresql'), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('unpacked_size', sa.BigInteger(), nullable=False),
    sa.Column('archive_format', sa.String(length=8), nullable=False),
    sa.Column('file_count', sa.Integer(), nullable=False),
    sa.Column('manifest', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('checks', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('risk_score', sa.Integer(), nullable=False),
    sa.Column('changelog', sa.Text(), nullable=True),
    sa.Column('platforms', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('host_range', sa.String(length=200), nullable=True),
    sa.Column('signature', sa.String(length=200), nullable=True),
    sa.Column('signature_key_id', sa.String(length=32), nullable=True),
    sa.Column('uploaded_by', sa.Uuid(), nullable=True),
    sa.Column('submitted_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('decided_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('decided_by', sa.Uuid(), nullable=True),
    sa.Column('decision_reason', sa.Text(), nullable=True),
    sa.Column('yanked_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('yank_reason', sa.Text(), nullable=True),
    sa.Column('download_count', sa.BigInteger(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['listing_id'], ['listings.id'], name=op.f('fk_listing_versions_listing_id_listings'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_listing_versions')),
    sa.UniqueConstraint('listing_id', 'version', name=op.f('uq_listing_versions_listing_id_version'))
    )
    with op.batch_alter_table('listing_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_listing_versions_listing_id'), ['listing_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_listing_versions_status'), ['status'], unique=False)

    op.create_table('review_tasks',
    sa.Column('listing_id', sa.Uuid(), nullable=False),
    sa.Column('version_id', sa.Uuid(), nullable=False),
    sa.Column('publisher_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('priority', sa.String(length=8), nullable=False),
    sa.Column('priority_rank', sa.Integer(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('claimed_by', sa.Uuid(), nullable=True),
    sa.Column('claimed_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('decided_by', sa.Uuid(), nullable=True),
    sa.Column('decided_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('appeal_status', sa.String(length=16), nullable=False),
    sa.Column('appeal_reason', sa.Text(), nullable=True),
    sa.Column('appealed_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('appeal_decided_by', sa.Uuid(), nullable=True),
    sa.Column('appeal_task_id', sa.Uuid(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['listing_id'], ['listings.id'], name=op.f('fk_review_tasks_listing_id_listings'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['publisher_id'], ['publishers.id'], name=op.f('fk_review_tasks_publisher_id_publishers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['listing_versions.id'], name=op.f('fk_review_tasks_version_id_listing_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_review_tasks'))
    )
    with op.batch_alter_table('review_tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_review_tasks_claimed_at'), ['claimed_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_review_tasks_listing_id'), ['listing_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_review_tasks_publisher_id'), ['publisher_id'], unique=False)
        batch_op.create_index('ix_review_tasks_queue', ['status', 'priority_rank', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_review_tasks_version_id'), ['version_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('review_tasks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_review_tasks_version_id'))
        batch_op.drop_index('ix_review_tasks_queue')
        batch_op.drop_index(batch_op.f('ix_review_tasks_publisher_id'))
        batch_op.drop_index(batch_op.f('ix_review_tasks_listing_id'))
        batch_op.drop_index(batch_op.f('ix_review_tasks_claimed_at'))

    op.drop_table('review_tasks')
    with op.batch_alter_table('listing_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_listing_versions_status'))
        batch_op.drop_index(batch_op.f('ix_listing_versions_listing_id'))

    op.drop_table('listing_versions')
    with op.batch_alter_table('listing_reviews', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_listing_reviews_user_id'))
        batch_op.drop_index(batch_op.f('ix_listing_reviews_listing_id'))

    op.drop_table('listing_reviews')
    op.drop_table('listing_daily_stats')
    with op.batch_alter_table('entitlements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_entitlements_user_id'))
        batch_op.drop_index(batch_op.f('ix_entitlements_listing_id'))

    op.drop_table('entitlements')
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_notifications_unread')
        batch_op.drop_index('ix_notifications_inbox')

    op.drop_table('notifications')
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_listings_status'))
        batch_op.drop_index(batch_op.f('ix_listings_sort_price'))
        batch_op.drop_index(batch_op.f('ix_listings_publisher_id'))
        batch_op.drop_index(batch_op.f('ix_listings_published_at'))
        batch_op.drop_index(batch_op.f('ix_listings_kind'))
        batch_op.drop_index(batch_op.f('ix_listings_category_id'))

    op.drop_table('listings')
    op.drop_table('categories')

