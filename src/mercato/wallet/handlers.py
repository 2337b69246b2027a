"""The wallet's reactions (DOMAIN.md saga table): money from a provider lands in the
payer's wallet; new users get the welcome credit the policies set (M12).

Ledger postings are idempotent by reference, and the bus records each handled event in
the same transaction, so a redelivered event moves no money twice.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.accounts.events import UserRegistered
from mercato.bus.context import current_bus
from mercato.bus.events import CloudEvent
from mercato.bus.outbox import publish
from mercato.bus.registry import subscribe
from mercato.kit.failpoints import failpoint
from mercato.ledger.errors import InsufficientFunds
from mercato.library.events import EntitlementRefused
from mercato.orders import service as orders
from mercato.orders.events import OrderCanceled, OrderCompleted, OrderCreated, OrderExpired, OrderFailed
from mercato.payments.events import PaymentSucceeded
from mercato.policies import service as policies
from mercato.wallet import service
from mercato.wallet.events import WalletDebited, WalletDebitRefused


@subscribe(UserRegistered, name="wallet.welcome_credit")
async def welcome_credit(session: AsyncSession, event: CloudEvent[UserRegistered]) -> None:
    amount = (await policies.current(session)).welcome_credit
    if amount > 0:
        await service.credit_welcome(session, user_id=event.data.user_id, amount=amount,
                                     currency=current_bus().settings.currency)


@subscribe(PaymentSucceeded, name="wallet.credit_payment")
async def credit_payment(session: AsyncSession, event: CloudEvent[PaymentSucceeded]) -> None:
    payment = event.data
    await service.credit_payment(session, payment_id=payment.payment_id, user_id=payment.user_id,
                                 provider=payment.provider, amount=payment.amount, currency=payment.currency,
                                 order_id=payment.order_id)


# --- the checkout saga (DOMAIN.md "Saga"): the wallet's part ------------------------------------

@subscribe(OrderCreated, name="wallet.debit_order")
async def debit_order(session: AsyncSession, event: CloudEvent[OrderCreated]) -> None:
    """Take a new order's total into escrow: ``wallet.debited``, or ``wallet.debit_refused``
    with the shortfall when the wallet holds less (nothing taken then)."""
    order = event.data
    # Free orders take nothing; an order that ended (canceled, expired) before this ran needs no money.
    if order.total <= 0 or await orders.status_of(session, order.order_id) != "created":
        return
    try:
        posted = await service.debit_order(session, order_id=order.order_id, user_id=order.user_id,
                                           amount=order.total, currency=order.currency)
    except InsufficientFunds:
        held = await service.balance(session, order.user_id)
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
    if total <= 0 or not await service.order_was_debited(session, ending.order_id):
        return
    await service.return_escrow(session, reference=f"order-compensate:{ending.order_id}", order_id=ending.order_id,
                                user_id=ending.user_id, amount=total, currency=ending.currency or "",
                                memo="Order refunded: it did not complete")
    await failpoint("saga.after_compensation")


@subscribe(OrderCompleted, name="earnings.settle")
async def settle_order(session: AsyncSession, event: CloudEvent[OrderCompleted]) -> None:
    """At completion escrow pays each publisher its lines minus the commission frozen on the
    order, and the platform the commission (M7)."""
    order = event.data
    await service.settle_order(session, order_id=order.order_id,
                               splits=[service.Split(line.publisher_id, line.total) for line in order.lines],
                               commission_bps=order.commission_bps, currency=order.currency)
    await failpoint("saga.after_settlement")
