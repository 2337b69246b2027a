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

from mercato.bus.context import HandlerContext
from mercato.bus.events import CloudEvent
from mercato.bus.registry import observe, subscribe
from mercato.bus.scheduler import sweep
from mercato.catalog import service as catalog
from mercato.kit.failpoints import failpoint
from mercato.kit.logging import log
from mercato.library.events import EntitlementGranted, EntitlementRefused
from mercato.notifications import service as notifications
from mercato.orders import service
from mercato.orders.events import OrderCompleted
from mercato.payments.events import PaymentSucceeded
from mercato.wallet.events import WalletDebited, WalletDebitRefused


@subscribe(WalletDebited, name="orders.on_debited")
async def on_debited(session: AsyncSession, event: CloudEvent[WalletDebited]) -> None:
    await service.on_debited(session, order_id=event.data.order_id)
    await failpoint("saga.after_paid")


@subscribe(WalletDebitRefused, name="orders.on_debit_refused")
async def on_debit_refused(session: AsyncSession, event: CloudEvent[WalletDebitRefused]) -> None:
    await service.on_debit_refused(session, order_id=event.data.order_id, shortfall=event.data.shortfall)


@subscribe(PaymentSucceeded, name="orders.on_payment_succeeded")
async def on_payment_succeeded(session: AsyncSession, event: CloudEvent[PaymentSucceeded]) -> None:
    payment = event.data
    if payment.purpose != "order" or payment.order_id is None:
        return
    await service.on_payment_succeeded(session, payment_id=payment.payment_id, order_id=payment.order_id,
                                       user_id=payment.user_id, provider=payment.provider, amount=payment.amount,
                                       currency=payment.currency)
    await failpoint("saga.after_shortfall_paid")


@subscribe(EntitlementGranted, name="orders.complete_on_granted")
async def complete_on_granted(session: AsyncSession, event: CloudEvent[EntitlementGranted]) -> None:
    if event.data.order_id is not None and event.data.source == "purchase":
        await service.complete(session, order_id=event.data.order_id)
        await failpoint("saga.after_completion")


@subscribe(EntitlementRefused, name="orders.fail_on_refused")
async def fail_on_refused(session: AsyncSession, event: CloudEvent[EntitlementRefused]) -> None:
    reason = event.data.detail or event.data.reason or "The purchase could not be delivered"
    await service.fail(session, order_id=event.data.order_id, reason=reason[:2000])
    await failpoint("saga.after_failure")


@observe(OrderCompleted, name="orders.notify_completed", each=True)
async def notify_completed(session: AsyncSession, event: CloudEvent[OrderCompleted]) -> None:
    order = event.data
    await notifications.notify(session, event_id=event.id, user_ids=[order.user_id],
                               kind="order.completed", title="Your order is complete",
                               body="Everything you bought is in your library.", link=f"/orders/{order.order_id}",
                               data={"order_id": str(order.order_id), "total": order.total,
                                     "currency": order.currency})


@observe(OrderCompleted, name="orders.count_sales")
async def count_sales(session: AsyncSession, events: list[CloudEvent[OrderCompleted]]) -> None:
    """Each completed line counts as sales of its listing (the listing's ``sale_count`` and
    its day's ``sales``), for the catalog's popularity and the publishers' statistics. A
    batch adds up per listing first: one update per listing, in one order for every writer."""
    sold: dict[uuid.UUID, int] = defaultdict(int)
    for event in events:
        for line in event.data.lines:
            sold[line.listing_id] += line.quantity
    for listing_id in sorted(sold):
        await catalog.count(session, listing_id, day_stat="sales", sale_count=sold[listing_id])


@sweep("orders.expire", every=15.0)
async def expire_orders(bus: HandlerContext) -> None:
    """Unpaid orders past their deadline expire (M5), a batch per transaction."""
    while True:
        async with bus.db.transaction() as session:
            expired = await service.expire_due(session, limit=100)
        if expired:
            log.info("orders expired", count=expired)
        if expired < 100:
            return
