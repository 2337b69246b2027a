"""The reads a receipt needs: the order or payment of its owner, the lines, the buyer."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.models import Order, OrderLine, Payment, User


async def order(session: AsyncSession, order_id: uuid.UUID, *, owner_id: uuid.UUID | None) -> Order | None:
    statement = select(Order).where(Order.id == order_id)
    if owner_id is not None:
        statement = statement.where(Order.user_id == owner_id)
    return await session.scalar(statement)


async def lines(session: AsyncSession, order_id: uuid.UUID) -> list[OrderLine]:
    return list(await session.scalars(select(OrderLine).where(OrderLine.order_id == order_id)
                                      .order_by(OrderLine.position)))


async def payment(session: AsyncSession, payment_id: uuid.UUID, *, owner_id: uuid.UUID | None) -> Payment | None:
    statement = select(Payment).where(Payment.id == payment_id)
    if owner_id is not None:
        statement = statement.where(Payment.user_id == owner_id)
    return await session.scalar(statement)


async def buyer(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)
