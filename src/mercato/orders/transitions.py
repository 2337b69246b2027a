"""The order's guarded transitions that checkout, the saga and fulfilment share, and the
events they publish.

Every transition is an ``UPDATE … WHERE status IN (…)`` (``repository.transition``): only
the caller that wins it goes on to publish, count and give back what the order held, so a
repeated or late event changes nothing twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.principal import Principal
from mercato.audit.actions import AuditAction
from mercato.audit.service import record as audit
from mercato.audit.service import record_system as audit_system
from mercato.bus.events import CloudEvent
from mercato.bus.outbox import publish
from mercato.catalog import service as catalog
from mercato.coupons import service as coupons
from mercato.kit.clock import utcnow
from mercato.kit.metrics import ORDERS, count_on_commit
from mercato.models import Order, OrderLine
from mercato.orders import repository
from mercato.orders.queries import lines

UNPAID = ("created", "awaiting_payment")
# Where a paid order may fail (a later step refused): DOMAIN "paid | awaiting_shipment → failed".
FAILABLE = ("paid", "awaiting_shipment", "shipped")
COMPLETABLE = ("paid", "shipped")
SYSTEM_OUTCOMES = {"completed": AuditAction.order_complete, "failed": AuditAction.order_fail,
                   "expired": AuditAction.order_expire, "canceled": AuditAction.order_cancel}


# --- events -------------------------------------------------------------------------------------

def line_data(line: OrderLine) -> dict[str, Any]:
    """An order line as the ``lines`` of an order event carry it."""
    return {"line_id": str(line.id), "listing_id": str(line.listing_id), "publisher_id": str(line.publisher_id),
            "delivery": line.delivery, "quantity": line.quantity, "total": line.total}


async def publish_order_event(session: AsyncSession, order: Order, event_type: str, **extra: Any) -> CloudEvent:
    """Publish ``event_type`` about the order (its ids, status and total, plus ``extra``)."""
    data = {"order_id": str(order.id), "user_id": str(order.user_id), "status": order.status, "total": order.total,
            "currency": order.currency, **extra}
    event = CloudEvent(type=event_type, subject=str(order.id), data=data)
    await publish(session, event)
    return event


# --- transitions --------------------------------------------------------------------------------

async def mark_paid(session: AsyncSession, order: Order, order_lines: list[OrderLine], *, at: datetime,
                    actor: Principal | None = None) -> bool:
    """created | awaiting_payment → paid (digital only) or awaiting_shipment (with physical
    lines: their shipments now wait for the publishers). False when the order was elsewhere."""
    physical = any(line.delivery == "physical" for line in order_lines)
    to = "awaiting_shipment" if physical else "paid"
    before = order.status
    if not await repository.transition(session, order.id, from_=UNPAID, to=to, at=at, paid_at=at):
        return False
    change = {"before": {"status": before}, "after": {"status": to, "total": order.total, "currency": order.currency}}
    if actor is not None:  # the buyer paid from the wallet in a request
        await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.order_pay,
                    resource_type="order", resource_id=order.id, **change)
    else:  # the saga: the wallet debit, a provider payment, a free order
        await audit_system(session, action=AuditAction.order_pay, resource_type="order", resource_id=order.id,
                           **change)
    if physical:
        await repository.move_shipments(session, order.id, from_=("pending",), to="awaiting", at=at)
    await publish_order_event(session, order, "order.paid", physical=physical,
                              lines=[line_data(line) for line in order_lines])
    return True


async def reached(session: AsyncSession, order: Order, outcome: str, *, before: str, reason: str | None = None,
                  audited: bool = False) -> None:
    """An order reached an outcome in this transaction: counted in /metrics once it commits,
    and audited as the saga's step unless the caller audits it with its actor."""
    count_on_commit(session, ORDERS.labels(outcome))
    if not audited:
        after: dict[str, Any] = {"status": outcome, "total": order.total, "currency": order.currency}
        if reason:
            after["reason"] = reason
        await audit_system(session, action=SYSTEM_OUTCOMES[outcome], resource_type="order", resource_id=order.id,
                           before={"status": before}, after=after)


async def close(session: AsyncSession, order: Order, *, from_: tuple[str, ...], to: str, reason: str,
                event: str, by: str | None = None) -> bool:
    """End an order: the guarded transition, then — once, because only the transition's
    winner gets here — the stock of every shipment that did not leave back on the shelf, an
    unpaid order's coupon given back, and the event (the wallet returns money taken)."""
    now = utcnow()
    was = order.status
    if not await repository.transition(session, order.id, from_=from_, to=to, at=now, closed_at=now,
                                       failure_reason=reason):
        return False
    # A cancel is audited by whoever canceled (fulfilment.cancel); failure and expiry are the saga's.
    await reached(session, order, to, before=was, reason=reason, audited=by is not None)
    unshipped = set(await repository.move_shipments(session, order.id, from_=("pending", "awaiting"), to="canceled",
                                                    at=now))
    for line in await lines(session, order.id):
        if line.delivery == "physical" and line.publisher_id in unshipped:
            await catalog.return_stock(session, line.listing_id, line.quantity)
    if order.coupon_id is not None and was in UNPAID:
        await coupons.release(session, order_id=order.id)
    await publish_order_event(session, order, event, reason=reason, **({"by": by} if by else {}))
    return True
