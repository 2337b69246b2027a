"""Personal registry tokens for the Open VSX / VS Code gallery adapter (issue 15).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mercato.kit.types

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('registry_tokens',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('hint', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', mercato.kit.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_registry_tokens_user_id_users'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registry_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_registry_tokens_token_hash'))
    )
    op.create_index(op.f('ix_registry_tokens_user_id'), 'registry_tokens', ['user_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_registry_tokens_user_id'), table_name='registry_tokens')
    op.drop_table('registry_tokens')
