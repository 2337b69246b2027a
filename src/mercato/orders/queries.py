"""Reading orders: the buyer's and the publisher's lists, one order as its viewer may see
it, and what other modules read of an order (receipts, refunds, licences, stats, health)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.permissions import Condition, Permission
from mercato.access.principal import Principal
from mercato.kit.clock import utcnow
from mercato.kit.errors import Forbidden, found_or_raise
from mercato.models import Order, OrderLine
from mercato.orders import repository
from mercato.orders.errors import OrderNotFound
from mercato.orders.schemas import OrderRead, PublisherOrderRead, ShipmentRead
from mercato.publishers import service as publishers


async def get_visible(session: AsyncSession, *, actor: Principal, order_id: uuid.UUID) -> Order:
    """The buyer's own order (``order:read`` own) or any (``any``); 404 otherwise."""
    condition = actor.condition_for(Permission.order_read)
    buyer = None if condition is Condition.any else actor.user_id
    order = found_or_raise(await repository.visible(session, order_id, buyer_id=buyer), OrderNotFound,
                           f"There is no order {order_id}.")
    return order


async def present(session: AsyncSession, orders: list[Order]) -> list[OrderRead]:
    ids = [order.id for order in orders]
    order_lines = await repository.lines_of(session, ids)
    shipments = await repository.shipments_of(session, ids)
    return [OrderRead.from_model(order, order_lines[order.id], shipments[order.id]) for order in orders]


async def of_buyer(session: AsyncSession, *, actor: Principal, status: str | None,
                   after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[Order]:
    return await repository.of_user(session, actor.user_id, status=status, after=after, limit=limit)


async def of_publisher(session: AsyncSession, *, actor: Principal, slug: str, status: str | None,
                       after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[PublisherOrderRead]:
    """Orders with physical lines of the publisher: members (``order:fulfil`` own) or ``any``;
    only the publisher's lines and shipment are shown, with the address to ship to."""
    publisher = await publishers.get(session, slug)
    condition = actor.condition_for(Permission.order_fulfil, publisher.slug)
    if not (condition is Condition.any or (
            condition is Condition.own and await publishers.member_role(session, publisher.id, actor.user_id))):
        raise Forbidden(f"Only members of {publisher.slug!r} and admins see its orders.")
    rows = await repository.of_publisher(session, publisher.id, status=status, after=after, limit=limit)
    order_lines = await repository.lines_of(session, [order.id for order, _ in rows])
    out = []
    for order, shipment in rows:
        own = [line for line in order_lines[order.id] if line.publisher_id == publisher.id]
        # The address is shown once the order is paid: before that there is nothing to ship.
        address = order.shipping_address if order.paid_at is not None else None
        out.append(PublisherOrderRead(
            id=order.id, status=order.status, currency=order.currency,  # type: ignore[arg-type]
            lines=OrderRead.from_model(order, own, []).lines, shipment=ShipmentRead.model_validate(shipment),
            shipping_address=address, created_at=order.created_at, paid_at=order.paid_at))
    return out


async def saga_overdue_since(session: AsyncSession) -> datetime | None:
    """When the longest-waiting step the order saga owes became due (None: nothing owed)."""
    return await repository.oldest_overdue(session, now=utcnow())


async def status_of(session: AsyncSession, order_id: uuid.UUID) -> str | None:
    """The order's state, for other modules' reactions (the wallet skips orders that ended)."""
    return await repository.status_of(session, order_id)


async def find(session: AsyncSession, order_id: uuid.UUID, *, buyer_id: uuid.UUID | None = None) -> Order | None:
    """The order, read fresh; with ``buyer_id`` only if it is that user's (others' orders do
    not exist for them). None when there is none."""
    return await repository.visible(session, order_id, buyer_id=buyer_id)


async def lines(session: AsyncSession, order_id: uuid.UUID) -> list[OrderLine]:
    """The order's lines in their order."""
    return (await repository.lines_of(session, [order_id]))[order_id]


async def counts_since(session: AsyncSession, since: datetime) -> dict[str, int]:
    """Orders created since ``since`` by status (the admin health page)."""
    return await repository.counts_since(session, since)
