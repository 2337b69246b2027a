"""Every query on refunds, and the guarded statements that make a refund happen once.

The order and its lines belong to the orders module: they are read and changed here only
through :mod:`mercato.orders.service` (the guarded statements that count refunded units
and amounts on them live in the orders repository)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.kit.pagination import after_key
from mercato.models import Order, OrderLine, Refund, RefundLine
from mercato.orders import service as orders

REFUNDABLE_ORDER = orders.REFUNDABLE


async def order(session: AsyncSession, order_id: uuid.UUID, *, buyer_id: uuid.UUID | None = None) -> Order | None:
    """The order; with ``buyer_id`` only if it is that user's (others' orders do not exist for them)."""
    return await orders.find(session, order_id, buyer_id=buyer_id)


async def lines_of(session: AsyncSession, order_id: uuid.UUID) -> list[OrderLine]:
    return await orders.lines(session, order_id)


def add(session: AsyncSession, refund: Refund, lines: Sequence[RefundLine]) -> None:
    session.add(refund)
    session.add_all(lines)


async def get(session: AsyncSession, refund_id: uuid.UUID) -> Refund | None:
    return await session.scalar(select(Refund).where(Refund.id == refund_id))


async def refund_lines(session: AsyncSession, refund_id: uuid.UUID) -> list[RefundLine]:
    return list(await session.scalars(select(RefundLine).where(RefundLine.refund_id == refund_id)))


async def publishers_of(session: AsyncSession, refund_id: uuid.UUID) -> set[uuid.UUID]:
    rows = await session.scalars(select(OrderLine.publisher_id)
                                 .join(RefundLine, RefundLine.order_line_id == OrderLine.id)
                                 .where(RefundLine.refund_id == refund_id))
    return set(rows)


async def decide(session: AsyncSession, refund_id: uuid.UUID, *, status: str, by: uuid.UUID | None, at: datetime,
                 reason: str | None, automatic: bool = False) -> bool:
    """requested → approved | rejected, once: a concurrent decision finds nothing to change."""
    changed = await session.execute(
        update(Refund).where(Refund.id == refund_id, Refund.status == "requested")
        .values(status=status, decided_by=by, decided_at=at, decision_reason=reason, automatic=automatic,
                updated_at=at)
        .execution_options(synchronize_session=False))
    return changed.rowcount == 1  # type: ignore[attr-defined]


async def complete(session: AsyncSession, refund_id: uuid.UUID, *, at: datetime) -> bool:
    changed = await session.execute(
        update(Refund).where(Refund.id == refund_id, Refund.status == "approved")
        .values(status="completed", updated_at=at).execution_options(synchronize_session=False))
    return changed.rowcount == 1  # type: ignore[attr-defined]


async def set_amount(session: AsyncSession, refund_id: uuid.UUID, amount: int) -> None:
    await session.execute(update(Refund).where(Refund.id == refund_id).values(amount=amount)
                          .execution_options(synchronize_session=False))


async def set_line_amount(session: AsyncSession, refund_line_id: uuid.UUID, amount: int) -> None:
    await session.execute(update(RefundLine).where(RefundLine.id == refund_line_id).values(amount=amount)
                          .execution_options(synchronize_session=False))


async def lock_lines(session: AsyncSession, line_ids: Sequence[uuid.UUID]) -> None:
    await orders.lock_lines(session, line_ids)


async def reversed_before(session: AsyncSession, line_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Per order line: how much completed refunds have already reversed."""
    rows = await session.execute(
        select(RefundLine.order_line_id, func.sum(RefundLine.amount))
        .join(Refund, Refund.id == RefundLine.refund_id)
        .where(RefundLine.order_line_id.in_(line_ids), Refund.status == "completed")
        .group_by(RefundLine.order_line_id))
    return {line_id: int(total) for line_id, total in rows.all()}


async def take_units(session: AsyncSession, line_id: uuid.UUID, *, quantity: int, amount: int) -> bool:
    """Count ``quantity`` more units of the line as refunded; False when that would refund
    more units than were bought (a concurrent refund got there first)."""
    return await orders.take_refunded_units(session, line_id, quantity=quantity, amount=amount)


async def add_refunded_to_order(session: AsyncSession, order_id: uuid.UUID, amount: int, *, at: datetime) -> None:
    """Raise the order's refunded amount (refunded once all of it is)."""
    await orders.add_refunded(session, order_id, amount, at=at)


async def visible(session: AsyncSession, *, user_id: uuid.UUID | None, publisher_ids: Sequence[uuid.UUID],
                  everything: bool, status: str | None, order_id: uuid.UUID | None,
                  after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[Refund]:
    """Refunds the caller may see: their own as buyer, those touching their publishers'
    lines, or (admins) every one; newest first."""
    statement = select(Refund)
    if not everything:
        touches_publisher = exists().where(
            RefundLine.refund_id == Refund.id, OrderLine.id == RefundLine.order_line_id,
            OrderLine.publisher_id.in_(publisher_ids)) if publisher_ids else None
        own = Refund.user_id == user_id
        statement = statement.where(or_(own, touches_publisher) if touches_publisher is not None else own)
    if status is not None:
        statement = statement.where(Refund.status == status)
    if order_id is not None:
        statement = statement.where(Refund.order_id == order_id)
    return list(await session.scalars(after_key(statement, Refund.created_at, Refund.id, after, limit)))
