"""The library's part of the order saga (DOMAIN.md "Saga"): a paid digital order
(``order.paid``) or a delivered physical one (``order.delivered``) entitles the buyer to
every listing in it, each line with a licence key when its listing has a key pool.

The outcome is an event either way: ``entitlement.granted`` (one per new entitlement,
written by :func:`service.grant`) or ``entitlement.refused`` (nothing granted), which the
orders and wallet modules compensate (full refund, order ``failed``). The bus records the
handled event in the same transaction, so a redelivery grants and hands out keys once.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus.events import CloudEvent
from mercato.bus.outbox import publish
from mercato.bus.registry import subscribe
from mercato.kit.failpoints import failpoint
from mercato.library import service
from mercato.library.events import EntitlementRefused
from mercato.orders.events import OrderDelivered, OrderPaid


async def _grant_or_refuse(session: AsyncSession, order: OrderPaid | OrderDelivered) -> None:
    refused = await service.grant_order(session, order_id=order.order_id, user_id=order.user_id, lines=[
        service.OrderLineToGrant(line.line_id, line.listing_id, line.delivery) for line in order.lines])
    if refused is not None:
        await publish(session, CloudEvent.of(EntitlementRefused(
            order_id=order.order_id, user_id=order.user_id, reason=refused.reason, detail=refused.detail,
            total=order.total, currency=order.currency), subject=str(order.order_id)))
    await failpoint("saga.after_grant")


@subscribe(OrderPaid, name="library.grant_on_paid")
async def grant_on_paid(session: AsyncSession, event: CloudEvent[OrderPaid]) -> None:
    """Digital-only orders are entitled once paid; orders with physical lines wait for
    delivery (``order.delivered``) and are entitled whole then."""
    if not event.data.physical:
        await _grant_or_refuse(session, event.data)


@subscribe(OrderDelivered, name="library.grant_on_delivered")
async def grant_on_delivered(session: AsyncSession, event: CloudEvent[OrderDelivered]) -> None:
    await _grant_or_refuse(session, event.data)
