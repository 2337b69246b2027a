"""Payments: the sandbox provider's own books (``sandbox_payments``), apart from the store's
``payments`` so that the poller really asks "the provider".

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
import mercato.kit.types

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('sandbox_payments',
    sa.Column('ref', sa.String(length=64), nullable=False),
    sa.Column('merchant_payment_id', sa.Uuid(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('card_last4', sa.String(length=4), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('confirm_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('refunded_amount', sa.BigInteger(), nullable=False),
    sa.Column('created_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount > 0', name=op.f('ck_sandbox_payments_amount_positive')),
    sa.PrimaryKeyConstraint('ref', name=op.f('pk_sandbox_payments')),
    sa.UniqueConstraint('merchant_payment_id', name=op.f('uq_sandbox_payments_merchant_payment_id'))
    )


def downgrade() -> None:
    op.drop_table('sandbox_payments')
