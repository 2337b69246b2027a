"""Every query on personal registry tokens."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.models.openvsx import RegistryToken


async def add(session: AsyncSession, token: RegistryToken) -> None:
    session.add(token)
    await session.flush()


async def active_by_hash(session: AsyncSession, token_hash: str) -> RegistryToken | None:
    return await session.scalar(select(RegistryToken).where(RegistryToken.token_hash == token_hash,
                                                            RegistryToken.revoked_at.is_(None)))


async def active_of(session: AsyncSession, user_id: uuid.UUID) -> list[RegistryToken]:
    return list(await session.scalars(select(RegistryToken).where(
        RegistryToken.user_id == user_id, RegistryToken.revoked_at.is_(None))
        .order_by(RegistryToken.created_at.desc(), RegistryToken.id)))


async def revoke(session: AsyncSession, user_id: uuid.UUID, token_id: uuid.UUID, at: datetime) -> bool:
    """Guarded: only the user's own, still active token; False otherwise."""
    result = await session.execute(
        update(RegistryToken).where(RegistryToken.id == token_id, RegistryToken.user_id == user_id,
                                    RegistryToken.revoked_at.is_(None))
        .values(revoked_at=at).returning(RegistryToken.id).execution_options(synchronize_session=False))
    return result.first() is not None


async def touch(session: AsyncSession, token_id: uuid.UUID, at: datetime) -> None:
    await session.execute(update(RegistryToken).where(RegistryToken.id == token_id)
                          .values(last_used_at=at).execution_options(synchronize_session=False))
