"""The orders module's reactions in the checkout saga (DOMAIN.md "Saga"), the expiry
sweep, and what follows a completed order (the buyer's notification, the sales count).

The saga's steps that move the buyer's money (the wallet's escrow) and entitle the buyer
(the library's grant) are here too: the orders module calls the wallet's and the library's
services, so those modules never import orders and cannot react to its events. Those steps
keep the subscriber names they were registered under (``wallet.…``, ``library.…``): the
names are stored with every delivery.

Each reaction is a guarded transition in the delivery's transaction, which also records
the handled event: a redelivery, a crash before commit or a late event changes nothing
twice, so every handler may run again after a restart.
"""

from __future__ import annotations

import uuid
from collections import defaultdict

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus.context import HandlerContext, store_runtime
from mercato.bus.events import CloudEvent
from mercato.bus.outbox import publish
from mercato.bus.registry import observe, subscribe
from mercato.bus.scheduler import sweep
from mercato.catalog import service as catalog
from mercato.kit.failpoints import failpoint
from mercato.kit.logging import log
from mercato.ledger.errors import InsufficientFunds
from mercato.library.events import EntitlementGranted, EntitlementRefused
from mercato.notifications import service as notifications
from mercato.orders import grant, service
from mercato.orders.events import (
    OrderCanceled,
    OrderCompleted,
    OrderCreated,
    OrderDelivered,
    OrderExpired,
    OrderFailed,
    OrderPaid,
)
from mercato.payments.events import PaymentSucceeded
from mercato.wallet import service as wallet
from mercato.wallet.events import WalletDebited, WalletDebitRefused

# --- the wallet's escrow: debit a new order, return what an order that ends took ----------

@subscribe(OrderCreated, name="wallet.debit_order")
async def debit_order(session: AsyncSession, event: CloudEvent[OrderCreated]) -> None:
    """Take a new order's total into escrow: ``wallet.debited``, or ``wallet.debit_refused``
    with the shortfall when the wallet holds less (nothing taken then)."""
    order = event.data
    # Free orders take nothing; an order that ended (canceled, expired) before this ran needs no money.
    if order.total <= 0 or await service.status_of(session, order.order_id) != "created":
        return
    try:
        posted = await wallet.debit_order(session, order_id=order.order_id, user_id=order.user_id,
                                          amount=order.total, currency=order.currency)
    except InsufficientFunds:
        held = await wallet.balance(session, order.user_id)
        await publish(session, CloudEvent.of(WalletDebitRefused(
            order_id=order.order_id, user_id=order.user_id, total=order.total, currency=order.currency,
            balance=held, shortfall=order.total - held), subject=str(order.order_id)))
        await failpoint("saga.after_debit_refused")
        return
    await publish(session, CloudEvent.of(WalletDebited(
        order_id=order.order_id, user_id=order.user_id, total=order.total, currency=order.currency,
        transaction_id=posted.transaction.id), subject=str(order.order_id)))
    await failpoint("saga.after_debit")


Ending = EntitlementRefused | OrderCanceled | OrderExpired | OrderFailed


@subscribe(EntitlementRefused, OrderCanceled, OrderExpired, OrderFailed, name="wallet.return_escrow")
async def return_escrow(session: AsyncSession, event: CloudEvent[Ending]) -> None:
    """Give the buyer back what an order that will not complete took (compensation). Only
    an order whose debit was posted holds money; every path returns it under one reference
    (``order-compensate:<order>``), so a refusal followed by ``order.failed`` returns it once.
    A debit that lands after this ran is returned by the orders module on ``wallet.debited``."""
    ending = event.data
    total = ending.total or 0
    if total <= 0 or not await wallet.order_was_debited(session, ending.order_id):
        return
    await wallet.return_escrow(session, reference=f"order-compensate:{ending.order_id}", order_id=ending.order_id,
                               user_id=ending.user_id, amount=total, currency=ending.currency or "",
                               memo="Order refunded: it did not complete")
    await failpoint("saga.after_compensation")


@subscribe(WalletDebited, name="orders.on_debited")
async def on_debited(session: AsyncSession, event: CloudEvent[WalletDebited]) -> None:
    await service.on_debited(session, order_id=event.data.order_id)
    await failpoint("saga.after_paid")


@subscribe(WalletDebitRefused, name="orders.on_debit_refused")
async def on_debit_refused(session: AsyncSession, event: CloudEvent[WalletDebitRefused]) -> None:
    await service.on_debit_refused(session, order_id=event.data.order_id, shortfall=event.data.shortfall)


def _pays_an_order(payment: PaymentSucceeded) -> bool:
    return payment.purpose == "order" and payment.order_id is not None  # not a top-up


@subscribe(PaymentSucceeded, name="orders.on_payment_succeeded", when=_pays_an_order)
async def on_payment_succeeded(session: AsyncSession, event: CloudEvent[PaymentSucceeded]) -> None:
    payment = event.data
    if not _pays_an_order(payment) or payment.order_id is None:
        return
    await service.on_payment_succeeded(session, payment_id=payment.payment_id, order_id=payment.order_id,
                                       user_id=payment.user_id, provider=payment.provider, amount=payment.amount,
                                       currency=payment.currency, gateway=store_runtime().payments)
    await failpoint("saga.after_shortfall_paid")


# --- the library's grant: a paid (or delivered) order entitles its buyer ----------------------

async def _grant_or_refuse(session: AsyncSession, order: OrderPaid | OrderDelivered) -> None:
    refused = await grant.grant_order(session, order_id=order.order_id, user_id=order.user_id, lines=[
        grant.OrderLineToGrant(line.line_id, line.listing_id, line.delivery) for line in order.lines])
    if refused is not None:
        await publish(session, CloudEvent.of(EntitlementRefused(
            order_id=order.order_id, user_id=order.user_id, reason=refused.reason, detail=refused.detail,
            total=order.total, currency=order.currency), subject=str(order.order_id)))
    await failpoint("saga.after_grant")


def _digital_only(paid: OrderPaid) -> bool:
    return not paid.physical


@subscribe(OrderPaid, name="library.grant_on_paid", when=_digital_only)
async def grant_on_paid(session: AsyncSession, event: CloudEvent[OrderPaid]) -> None:
    """Digital-only orders are entitled once paid; orders with physical lines wait for
    delivery (``order.delivered``) and are entitled whole then."""
    if _digital_only(event.data):
        await _grant_or_refuse(session, event.data)


@subscribe(OrderDelivered, name="library.grant_on_delivered")
async def grant_on_delivered(session: AsyncSession, event: CloudEvent[OrderDelivered]) -> None:
    await _grant_or_refuse(session, event.data)


def _granted_for_an_order(granted: EntitlementGranted) -> bool:
    # an admin's grant, a free claim or a publisher's own copy completes no order
    return granted.order_id is not None and granted.source == "purchase"


@subscribe(EntitlementGranted, name="orders.complete_on_granted", when=_granted_for_an_order)
async def complete_on_granted(session: AsyncSession, event: CloudEvent[EntitlementGranted]) -> None:
    if _granted_for_an_order(event.data):
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
