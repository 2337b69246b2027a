"""Every query on refunds, and the guarded statements that make a refund happen once."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, case, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.models import Order, OrderLine, Refund, RefundLine

REFUNDABLE_ORDER = ("completed", "partially_refunded")


async def order(session: AsyncSession, order_id: uuid.UUID, *, buyer_id: uuid.UUID | None = None) -> Order | None:
    """The order; with ``buyer_id`` only if it is that user's (others' orders do not exist for them)."""
    statement = select(Order).where(Order.id == order_id)
    if buyer_id is not None:
        statement = statement.where(Order.user_id == buyer_id)
    return await session.scalar(statement)


async def lines_of(session: AsyncSession, order_id: uuid.UUID) -> list[OrderLine]:
    return list(await session.scalars(select(OrderLine).where(OrderLine.order_id == order_id)
                                      .order_by(OrderLine.position)))


def add(session: AsyncSession, refund: Refund, lines: Sequence[RefundLine]) -> None:
    session.add(refund)
    session.add_all(lines)


async def get(session: AsyncSession, refund_id: uuid.UUID) -> Refund | None:
    return await session.scalar(select(Refund).where(Refund.id == refund_id))


async def refund_lines(session: AsyncSession, refund_id: uuid.UUID) -> list[RefundLine]:
    return list(await session.scalars(select(RefundLine).where(RefundLine.refund_id == refund_id)))


async def publishers_of(session: AsyncSession, refund_id: uuid.UUID) -> set[uuid.UUID]:
    rows = await session.scalars(select(OrderLine.publisher_id).join(RefundLine, RefundLine.order_line_id == OrderLine.id)
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


async def take_units(session: AsyncSession, line_id: uuid.UUID, *, quantity: int, amount: int) -> bool:
    """Count ``quantity`` more units of the line as refunded; False when that would refund
    more units than were bought (a concurrent refund got there first)."""
    changed = await session.execute(
        update(OrderLine).where(OrderLine.id == line_id, OrderLine.refunded_quantity + quantity <= OrderLine.quantity)
        .values(refunded_quantity=OrderLine.refunded_quantity + quantity,
                refunded_amount=OrderLine.refunded_amount + amount)
        .execution_options(synchronize_session=False))
    return changed.rowcount == 1  # type: ignore[attr-defined]


async def add_refunded_to_order(session: AsyncSession, order_id: uuid.UUID, amount: int, *, at: datetime) -> None:
    """Raise the order's refunded amount; the order becomes refunded once all of it is
    (SET expressions read the row as it was, on SQLite and PostgreSQL alike)."""
    await session.execute(
        update(Order).where(Order.id == order_id, Order.status.in_(REFUNDABLE_ORDER))
        .values(refunded_amount=Order.refunded_amount + amount, updated_at=at,
                status=case((Order.refunded_amount + amount >= Order.total, "refunded"), else_="partially_refunded"))
        .execution_options(synchronize_session=False))


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
    if after is not None:
        at, row_id = after
        statement = statement.where(or_(Refund.created_at < at, and_(Refund.created_at == at, Refund.id < row_id)))
    return list(await session.scalars(statement.order_by(Refund.created_at.desc(), Refund.id.desc()).limit(limit)))
