"""Every query of orders, order lines and shipments.

State changes are guarded statements (``UPDATE … WHERE status IN (…) RETURNING``): a
transition happens once, whoever races it (a redelivered event, a payment racing expiry,
a buyer racing the saga). Stock is the catalog's: orders reserve and return it through
catalog.service (``reserve_stock`` refuses to go below zero).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.kit.db import insert_unless_conflict, refresh_if_held
from mercato.kit.pagination import after_key
from mercato.models import Order, OrderLine, Shipment

# --- orders -------------------------------------------------------------------------------------

async def by_id(session: AsyncSession, order_id: uuid.UUID, *, fresh: bool = False) -> Order | None:
    statement = select(Order).where(Order.id == order_id)
    if fresh:
        statement = statement.execution_options(populate_existing=True)
    return await session.scalar(statement)


async def visible(session: AsyncSession, order_id: uuid.UUID, *, buyer_id: uuid.UUID | None) -> Order | None:
    """The order; with ``buyer_id`` only if it is that user's (others' orders do not exist for them)."""
    statement = select(Order).where(Order.id == order_id)
    if buyer_id is not None:
        statement = statement.where(Order.user_id == buyer_id)
    return await session.scalar(statement.execution_options(populate_existing=True))


async def by_key(session: AsyncSession, user_id: uuid.UUID, key: str) -> Order | None:
    return await session.scalar(select(Order).where(Order.user_id == user_id, Order.idempotency_key == key))


async def add(session: AsyncSession, order: Order, lines: Sequence[OrderLine], shipments: Sequence[Shipment]) -> bool:
    """Insert the order with its lines and shipments; False when the (user, key) pair exists (INV-4)."""
    if not await insert_unless_conflict(session, order):
        return False
    session.add_all([*lines, *shipments])
    await session.flush()
    return True


async def of_user(session: AsyncSession, user_id: uuid.UUID, *, status: str | None,
                  after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[Order]:
    statement = select(Order).where(Order.user_id == user_id)
    if status is not None:
        statement = statement.where(Order.status == status)
    return list(await session.scalars(after_key(statement, Order.created_at, Order.id, after, limit)))


async def of_publisher(session: AsyncSession, publisher_id: uuid.UUID, *, status: str | None,
                       after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[tuple[Order, Shipment]]:
    """Orders with a shipment of this publisher, newest first."""
    statement = (select(Order, Shipment).join(Shipment, Shipment.order_id == Order.id)
                 .where(Shipment.publisher_id == publisher_id))
    if status is not None:
        statement = statement.where(Order.status == status)
    rows = await session.execute(after_key(statement, Order.created_at, Order.id, after, limit))
    return [(order, shipment) for order, shipment in rows]


async def status_of(session: AsyncSession, order_id: uuid.UUID) -> str | None:
    return await session.scalar(select(Order.status).where(Order.id == order_id))


async def transition(session: AsyncSession, order_id: uuid.UUID, *, from_: Iterable[str], to: str,
                     at: datetime, **values: Any) -> bool:
    """Move the order to ``to`` only from one of ``from_``; False when it was elsewhere."""
    result = await session.execute(
        update(Order).where(Order.id == order_id, Order.status.in_(list(from_)))
        .values(status=to, updated_at=at, **values).returning(Order.id)
        .execution_options(synchronize_session=False))
    moved = result.first() is not None
    if moved:
        await refresh_if_held(session, Order, order_id)
    return moved


async def lock(session: AsyncSession, order_id: uuid.UUID, *, statuses: Iterable[str], at: datetime) -> bool:
    """Touch the order's row while it is in one of ``statuses``: on PostgreSQL this holds its
    lock until commit, so fulfilment steps on one order (ship, deliver, publisher cancel)
    run one after the other. False when the order is in none of them."""
    result = await session.execute(
        update(Order).where(Order.id == order_id, Order.status.in_(list(statuses)))
        .values(updated_at=at).returning(Order.id).execution_options(synchronize_session=False))
    return result.first() is not None


async def due_for_expiry(session: AsyncSession, *, now: datetime, limit: int) -> list[uuid.UUID]:
    rows = await session.scalars(
        select(Order.id).where(Order.status.in_(("created", "awaiting_payment")), Order.expires_at <= now)
        .order_by(Order.expires_at).limit(limit))
    return list(rows)


# --- lines and shipments ------------------------------------------------------------------------

async def lines_of(session: AsyncSession, order_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[OrderLine]]:
    out: dict[uuid.UUID, list[OrderLine]] = {order_id: [] for order_id in order_ids}
    if not order_ids:
        return out
    rows = await session.scalars(select(OrderLine).where(OrderLine.order_id.in_(list(order_ids)))
                                 .order_by(OrderLine.order_id, OrderLine.position)
                                 .execution_options(populate_existing=True))
    for line in rows:
        out[line.order_id].append(line)
    return out


async def shipments_of(session: AsyncSession, order_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Shipment]]:
    out: dict[uuid.UUID, list[Shipment]] = {order_id: [] for order_id in order_ids}
    if not order_ids:
        return out
    rows = await session.scalars(select(Shipment).where(Shipment.order_id.in_(list(order_ids)))
                                 .order_by(Shipment.order_id, Shipment.created_at, Shipment.id)
                                 .execution_options(populate_existing=True))
    for shipment in rows:
        out[shipment.order_id].append(shipment)
    return out


async def move_shipments(session: AsyncSession, order_id: uuid.UUID, *, from_: Iterable[str], to: str, at: datetime,
                         publisher_ids: Sequence[uuid.UUID] | None = None, **values: Any) -> list[uuid.UUID]:
    """Guarded change of the order's shipments (of some publishers); the publishers whose
    shipment moved."""
    statement = update(Shipment).where(Shipment.order_id == order_id, Shipment.status.in_(list(from_)))
    if publisher_ids is not None:
        statement = statement.where(Shipment.publisher_id.in_(list(publisher_ids)))
    result = await session.execute(statement.values(status=to, updated_at=at, **values)
                                   .returning(Shipment.publisher_id).execution_options(synchronize_session=False))
    return [row[0] for row in result.all()]


async def count_shipments(session: AsyncSession, order_id: uuid.UUID, *, statuses: Iterable[str] | None = None) -> int:
    statement = select(func.count()).select_from(Shipment).where(Shipment.order_id == order_id)
    if statuses is not None:
        statement = statement.where(Shipment.status.in_(list(statuses)))
    return int(await session.scalar(statement) or 0)


# --- licence keys (the licences module's read and write on order lines, through orders.service) ------

async def listing_of_line(session: AsyncSession, line_id: uuid.UUID) -> uuid.UUID | None:
    return await session.scalar(select(OrderLine.listing_id).where(OrderLine.id == line_id))


async def link_licence_key(session: AsyncSession, line_id: uuid.UUID, key_id: uuid.UUID) -> None:
    await session.execute(update(OrderLine).where(OrderLine.id == line_id)
                          .values(licence_key_id=key_id).execution_options(synchronize_session=False))


# --- refunds (the refunds module's writes on orders, through orders.service) ------------------------

REFUNDABLE = ("completed", "partially_refunded")


async def take_refunded_units(session: AsyncSession, line_id: uuid.UUID, *, quantity: int, amount: int) -> bool:
    """Count ``quantity`` more units of the line as refunded; False when that would refund
    more units than were bought (a concurrent refund got there first)."""
    changed = await session.execute(
        update(OrderLine).where(OrderLine.id == line_id, OrderLine.refunded_quantity + quantity <= OrderLine.quantity)
        .values(refunded_quantity=OrderLine.refunded_quantity + quantity,
                refunded_amount=OrderLine.refunded_amount + amount)
        .execution_options(synchronize_session=False))
    return changed.rowcount == 1  # type: ignore[attr-defined]


async def lock_lines(session: AsyncSession, line_ids: Iterable[uuid.UUID]) -> None:
    """Row locks on the lines until the transaction ends (PostgreSQL; SQLite's single writer
    serialises anyway), taken in id order so two lockers never wait on each other."""
    await session.execute(select(OrderLine.id).where(OrderLine.id.in_(sorted(set(line_ids))))
                          .order_by(OrderLine.id).with_for_update())


async def add_refunded(session: AsyncSession, order_id: uuid.UUID, amount: int, *, at: datetime) -> str | None:
    """Raise the order's refunded amount; the order becomes refunded once all of it is
    (SET expressions read the row as it was, on SQLite and PostgreSQL alike). Returns the
    order's new status (None: it was not refundable)."""
    result = await session.execute(
        update(Order).where(Order.id == order_id, Order.status.in_(REFUNDABLE))
        .values(refunded_amount=Order.refunded_amount + amount, updated_at=at,
                status=case((Order.refunded_amount + amount >= Order.total, "refunded"), else_="partially_refunded"))
        .returning(Order.status).execution_options(synchronize_session=False))
    return result.scalar_one_or_none()


async def oldest_overdue(session: AsyncSession, *, now: datetime) -> datetime | None:
    """When the longest-waiting step of the order saga became due: a paid digital order waits
    for its fulfilment since ``paid_at``; an unpaid order past ``expires_at`` waits for the expiry
    sweep. None when nothing is owed (an order awaiting shipment waits for a person, not the saga)."""
    paid = await session.scalar(select(func.min(Order.paid_at)).where(Order.status == "paid"))
    expired = await session.scalar(select(func.min(Order.expires_at)).where(
        Order.status.in_(("created", "awaiting_payment")), Order.expires_at <= now))
    found = [moment for moment in (paid, expired) if moment is not None]
    return min(found) if found else None
async def counts_since(session: AsyncSession, since: datetime) -> dict[str, int]:
    """Orders created since ``since``, by their status now (the admin health page)."""
    rows = await session.execute(select(Order.status, func.count()).where(Order.created_at >= since)
                                 .group_by(Order.status))
    return {status: int(count) for status, count in rows}
