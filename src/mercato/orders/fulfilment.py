"""After payment, before completion: the buyer's and the publishers' actions on an order.
The buyer cancels an unpaid order; a publisher (or an admin) cancels one awaiting shipment,
ships its part and marks it delivered. Once every part is delivered, ``order.delivered``
lets the library entitle the buyer, which completes the order (the saga)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.permissions import Condition, Permission
from mercato.access.principal import Principal
from mercato.audit.actions import AuditAction
from mercato.audit.service import record as audit
from mercato.kit.clock import utcnow
from mercato.kit.errors import found_or_raise
from mercato.models import Order
from mercato.notifications import service as notifications
from mercato.orders import repository
from mercato.orders.errors import OrderNotFound, OrderTransitionRefused
from mercato.orders.queries import lines
from mercato.orders.transitions import UNPAID, close, line_data, publish_order_event
from mercato.publishers import service as publishers


async def _fulfilling(session: AsyncSession, actor: Principal, order: Order) -> tuple[list[uuid.UUID], bool]:
    """The publishers of the order's shipments the actor acts for (``order:fulfil``), and
    whether through ``any``."""
    condition = actor.condition_for(Permission.order_fulfil)
    shipments = (await repository.shipments_of(session, [order.id]))[order.id]
    shipping = [shipment.publisher_id for shipment in shipments]
    if condition is Condition.any:
        return shipping, True
    if condition is Condition.own:
        mine = set(await publishers.publisher_ids_for(session, actor, Permission.order_fulfil))
        return [publisher_id for publisher_id in shipping if publisher_id in mine], False
    return [], False


async def cancel(session: AsyncSession, *, actor: Principal, order_id: uuid.UUID) -> Order:
    """The buyer cancels an unpaid order; a publisher of the order (or an admin) cancels one
    awaiting shipment before anything shipped: full refund, stock back. Anyone else: 404."""
    order = found_or_raise(await repository.by_id(session, order_id, fresh=True), OrderNotFound,
                           f"There is no order {order_id}.")
    if order.user_id == actor.user_id:
        before = order.status
        if not await close(session, order, from_=UNPAID, to="canceled", reason="Canceled by the buyer",
                           event="order.canceled", by="buyer"):
            raise OrderTransitionRefused(f"Order {order.id} is {order.status}; the buyer cancels only unpaid orders.")
        await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.order_cancel,
                    resource_type="order", resource_id=order.id, before={"status": before},
                    after={"status": "canceled", "reason": "Canceled by the buyer"})
        return order
    any_cancel = actor.condition_for(Permission.order_cancel) is Condition.any
    fulfilling, fulfils_any = await _fulfilling(session, actor, order)
    if not any_cancel and not fulfilling:
        raise OrderNotFound(f"There is no order {order_id}.")
    before = order.status
    if any_cancel and before in UNPAID:
        moved = await close(session, order, from_=UNPAID, to="canceled", reason="Canceled by an admin",
                            event="order.canceled", by="admin")
    else:
        by = "admin" if any_cancel or fulfils_any else "publisher"
        moved = await _cancel_awaiting_shipment(session, order, by=by)
    if not moved:
        raise OrderTransitionRefused(f"Order {order.id} is {order.status}; a publisher cancels only orders awaiting "
                                     "shipment, before anything shipped.")
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.order_cancel,
                resource_type="order", resource_id=order.id, before={"status": before},
                after={"status": order.status, "reason": order.failure_reason})
    return order


async def _cancel_awaiting_shipment(session: AsyncSession, order: Order, *, by: str) -> bool:
    now = utcnow()
    # Lock the order first (ship and deliver do the same), then check nothing left.
    if not await repository.lock(session, order.id, statuses=("awaiting_shipment",), at=now):
        return False
    if await repository.count_shipments(session, order.id, statuses=("shipped", "delivered")):
        return False
    return await close(session, order, from_=("awaiting_shipment",), to="canceled",
                       reason=f"Canceled by the {by}", event="order.canceled", by=by)


async def ship(session: AsyncSession, *, actor: Principal, order_id: uuid.UUID, carrier: str,
               tracking_number: str) -> Order:
    """A publisher ships its part of a paid order (``order.shipped``; the buyer is notified);
    once every part shipped, the order is ``shipped``."""
    order, mine = await _for_fulfilment(session, actor, order_id)
    now = utcnow()
    if not await repository.lock(session, order.id, statuses=("awaiting_shipment",), at=now):
        raise OrderTransitionRefused(f"Order {order.id} is {order.status}; only paid orders awaiting shipment ship.")
    moved = await repository.move_shipments(session, order.id, from_=("awaiting",), to="shipped", at=now,
                                            publisher_ids=mine, carrier=carrier, tracking_number=tracking_number,
                                            shipped_at=now)
    if not moved:
        raise OrderTransitionRefused("Your part of this order has shipped already.")
    if not await repository.count_shipments(session, order.id, statuses=("pending", "awaiting")):
        await repository.transition(session, order.id, from_=("awaiting_shipment",), to="shipped", at=now)
    await session.refresh(order)
    for publisher_id in moved:
        event = await publish_order_event(session, order, "order.shipped", publisher_id=str(publisher_id),
                                          carrier=carrier, tracking_number=tracking_number)
        await notifications.notify(session, event_id=event.id, user_ids=[order.user_id], kind="order.shipped",
                                   title="Your order has shipped", body=f"{carrier}, tracking number {tracking_number}",
                                   link=f"/orders/{order.id}",
                                   data={"order_id": str(order.id), "carrier": carrier,
                                         "tracking_number": tracking_number})
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.order_ship,
                resource_type="order", resource_id=order.id, before={"status": "awaiting_shipment"},
                after={"status": order.status, "publishers": [str(p) for p in moved], "carrier": carrier,
                       "tracking_number": tracking_number})
    return order


async def deliver(session: AsyncSession, *, actor: Principal, order_id: uuid.UUID) -> Order:
    """A publisher marks its shipped part delivered; when every part is, ``order.delivered``
    lets the library entitle the buyer, which completes the order."""
    order, mine = await _for_fulfilment(session, actor, order_id)
    before = order.status
    now = utcnow()
    if not await repository.lock(session, order.id, statuses=("awaiting_shipment", "shipped"), at=now):
        raise OrderTransitionRefused(f"Order {order.id} is {order.status}; nothing of it is on its way.")
    moved = await repository.move_shipments(session, order.id, from_=("shipped",), to="delivered", at=now,
                                            publisher_ids=mine, delivered_at=now)
    if not moved:
        raise OrderTransitionRefused("Your part of this order has not shipped yet, or was delivered already.")
    await session.refresh(order)
    if not await repository.count_shipments(session, order.id, statuses=("pending", "awaiting", "shipped")):
        await publish_order_event(session, order, "order.delivered",
                                  lines=[line_data(line) for line in await lines(session, order.id)])
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.order_deliver,
                resource_type="order", resource_id=order.id, before={"status": before},
                after={"status": order.status, "publishers": [str(p) for p in moved], "delivered": True})
    return order


async def _for_fulfilment(session: AsyncSession, actor: Principal, order_id: uuid.UUID
                          ) -> tuple[Order, list[uuid.UUID]]:
    """The order and the publishers of it the actor ships for; 404 when there are none
    (another publisher's order, or no physical lines)."""
    order = found_or_raise(await repository.by_id(session, order_id, fresh=True), OrderNotFound,
                           f"There is no order {order_id}.")
    mine, _ = await _fulfilling(session, actor, order)
    if not mine:
        raise OrderNotFound(f"There is no order {order_id}.")
    return order, mine
