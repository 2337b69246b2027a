"""The orders module's reactions in the checkout saga (DOMAIN.md "Saga"), the expiry
sweep, and what follows a completed order (the buyer's notification, the sales count).

Each reaction is a guarded transition in the delivery's transaction, which also records
the handled event: a redelivery, a crash before commit or a late event changes nothing
twice, so every handler may run again after a restart.
"""

from __future__ import annotations

import uuid
from collections import defaultdict

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus.events import CloudEvent
from mercato.bus.registry import observe, subscribe
from mercato.bus.scheduler import sweep
from mercato.catalog import service as catalog
from mercato.kit.failpoints import failpoint
from mercato.kit.logging import log
from mercato.notifications import service as notifications
from mercato.orders import service


def _order_id(event: CloudEvent) -> uuid.UUID | None:
    value = event.data.get("order_id")
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


@subscribe("wallet.debited", name="orders.on_debited")
async def on_debited(session: AsyncSession, event: CloudEvent) -> None:
    order_id = _order_id(event)
    if order_id is not None:
        await service.on_debited(session, order_id=order_id)
        await failpoint("saga.after_paid")


@subscribe("wallet.debit_refused", name="orders.on_debit_refused")
async def on_debit_refused(session: AsyncSession, event: CloudEvent) -> None:
    order_id = _order_id(event)
    if order_id is not None:
        await service.on_debit_refused(session, order_id=order_id, shortfall=int(event.data.get("shortfall", 0)))


@subscribe("payment.succeeded", name="orders.on_payment_succeeded")
async def on_payment_succeeded(session: AsyncSession, event: CloudEvent) -> None:
    data = event.data
    order_id = _order_id(event)
    if data.get("purpose") != "order" or order_id is None:
        return
    await service.on_payment_succeeded(session, payment_id=uuid.UUID(data["payment_id"]), order_id=order_id,
                                       user_id=uuid.UUID(data["user_id"]), provider=data["provider"],
                                       amount=int(data["amount"]), currency=data["currency"])
    await failpoint("saga.after_shortfall_paid")


@subscribe("entitlement.granted", name="orders.complete_on_granted")
async def complete_on_granted(session: AsyncSession, event: CloudEvent) -> None:
    order_id = _order_id(event)
    if order_id is not None and event.data.get("source") == "purchase":
        await service.complete(session, order_id=order_id)
        await failpoint("saga.after_completion")


@subscribe("entitlement.refused", name="orders.fail_on_refused")
async def fail_on_refused(session: AsyncSession, event: CloudEvent) -> None:
    order_id = _order_id(event)
    if order_id is not None:
        reason = event.data.get("detail") or event.data.get("reason") or "The purchase could not be delivered"
        await service.fail(session, order_id=order_id, reason=str(reason)[:2000])
        await failpoint("saga.after_failure")


@observe("order.completed", name="orders.notify_completed", each=True)
async def notify_completed(session: AsyncSession, event: CloudEvent) -> None:
    order_id = _order_id(event)
    if order_id is None:
        return
    await notifications.notify(session, event_id=event.id, user_ids=[uuid.UUID(event.data["user_id"])],
                               kind="order.completed", title="Your order is complete",
                               body="Everything you bought is in your library.", link=f"/orders/{order_id}",
                               data={"order_id": str(order_id), "total": event.data.get("total"),
                                     "currency": event.data.get("currency")})


@observe("order.completed", name="orders.count_sales")
async def count_sales(session: AsyncSession, events: list[CloudEvent]) -> None:
    """Each completed line counts as sales of its listing (the listing's ``sale_count`` and
    its day's ``sales``), for the catalog's popularity and the publishers' statistics. A
    batch adds up per listing first: one update per listing, in one order for every writer."""
    sold: dict[uuid.UUID, int] = defaultdict(int)
    for event in events:
        for line in event.data.get("lines", []):
            sold[uuid.UUID(line["listing_id"])] += int(line.get("quantity", 1))
    for listing_id in sorted(sold):
        await catalog.count(session, listing_id, day_stat="sales", sale_count=sold[listing_id])


@sweep("orders.expire", every=15.0)
async def expire_orders(bus) -> None:  # type: ignore[no-untyped-def]
    """Unpaid orders past their deadline expire (M5), a batch per transaction."""
    while True:
        async with bus.db.transaction() as session:
            expired = await service.expire_due(session, limit=100)
        if expired:
            log.info("orders expired", count=expired)
        if expired < 100:
            return
