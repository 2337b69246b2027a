"""Bus lanes: the relay's position on outbox rows, and cursors of batch observers.

Events relayed before this revision keep no position; observers start after them (their
deliveries were written per subscriber by the old relay and are finished as before).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mercato.kit.types

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('position', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.create_index('ix_outbox_position', ['position'], unique=True)
    op.create_table('bus_cursors',
    sa.Column('subscriber', sa.String(length=100), nullable=False),
    sa.Column('position', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('updated_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('subscriber', name=op.f('pk_bus_cursors'))
    )


def downgrade() -> None:
    op.drop_table('bus_cursors')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_position')
        batch_op.drop_column('position')
