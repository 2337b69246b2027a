"""Bus: per-subscriber deliveries, processed events (inbox), sweep leases; outbox audience.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
import mercato.kit.types


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('event_deliveries',
    sa.Column('subscriber', sa.String(length=100), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('sequence', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('subject', sa.String(length=128), nullable=False),
    sa.Column('event_type', sa.String(length=100), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('done_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('subscriber', 'event_id', name=op.f('pk_event_deliveries')),
    sa.UniqueConstraint('id', name=op.f('uq_event_deliveries_id'))
    )
    with op.batch_alter_table('event_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_event_deliveries_due', ['state', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_event_deliveries_order', ['subscriber', 'subject', 'sequence'], unique=False)

    op.create_table('processed_events',
    sa.Column('subscriber', sa.String(length=100), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('processed_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('subscriber', 'event_id', name=op.f('pk_processed_events'))
    )
    op.create_table('sweep_leases',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('holder', sa.String(length=64), nullable=False),
    sa.Column('expires_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_run_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_ok', sa.Boolean(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_sweep_leases'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('user_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('publisher_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('relayed_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_outbox_publisher_id'), ['publisher_id'], unique=False)
        batch_op.create_index('ix_outbox_unrelayed', ['relayed_at', 'sequence'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_user_id'), ['user_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_user_id'))
        batch_op.drop_index('ix_outbox_unrelayed')
        batch_op.drop_index(batch_op.f('ix_outbox_publisher_id'))
        batch_op.drop_column('relayed_at')
        batch_op.drop_column('publisher_id')
        batch_op.drop_column('user_id')

    op.drop_table('sweep_leases')
    op.drop_table('processed_events')
    with op.batch_alter_table('event_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_event_deliveries_order')
        batch_op.drop_index('ix_event_deliveries_due')

    op.drop_table('event_deliveries')
