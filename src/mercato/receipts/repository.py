"""The reads a receipt needs besides the order (which the orders service gives): the
payment of its owner and the buyer."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.models import Payment, User


async def payment(session: AsyncSession, payment_id: uuid.UUID, *, owner_id: uuid.UUID | None) -> Payment | None:
    statement = select(Payment).where(Payment.id == payment_id)
    if owner_id is not None:
        statement = statement.where(Payment.user_id == owner_id)
    return await session.scalar(statement)


async def buyer(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)
