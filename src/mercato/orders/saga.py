"""The order's steps in the checkout saga (DOMAIN.md "Saga"): what the orders module does
when the wallet debited or refused, a provider payment arrived, the library entitled or
refused, and when an unpaid order runs out of time; and the buyer's ``pay`` of a shortfall.

``order.created`` → the wallet debits the total into escrow → ``wallet.debited`` → here:
``paid`` (``order.paid``; orders with physical lines wait in ``awaiting_shipment``) →
the library entitles (``entitlement.granted``) → here: ``completed`` (``order.completed``),
which settles the money to the publishers. A refused debit leaves the order
``awaiting_payment`` until a provider payment for the shortfall arrives (or it expires);
a refused grant fails the order with a full refund.

The steps that start or refund a provider payment are handed the store's payment gateway by
their caller (the endpoint's runtime, or the runtime of the bus running the handler).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.principal import Principal
from mercato.kit.clock import utcnow
from mercato.kit.errors import found_or_raise
from mercato.ledger.errors import InsufficientFunds
from mercato.models import Order
from mercato.orders import repository
from mercato.orders.errors import OrderNotFound, OrderTransitionRefused
from mercato.orders.queries import lines
from mercato.orders.transitions import (
    COMPLETABLE,
    FAILABLE,
    UNPAID,
    close,
    line_data,
    mark_paid,
    publish_order_event,
    reached,
)
from mercato.payments import service as payments
from mercato.wallet import service as wallet

# --- payment --------------------------------------------------------------------------------------


async def on_debited(session: AsyncSession, *, order_id: uuid.UUID) -> None:
    """``wallet.debited``: the total is in escrow. An order that ended meanwhile (the buyer
    canceled, it expired) gets the money back at once."""
    order = await repository.by_id(session, order_id, fresh=True)
    if order is None:
        return
    if await mark_paid(session, order, await lines(session, order_id), at=utcnow()):
        return
    if order.status in ("canceled", "expired", "failed"):
        await _return_escrow(session, order, memo="Order ended before it was paid")


async def _return_escrow(session: AsyncSession, order: Order, *, memo: str) -> None:
    """The whole total back to the buyer: one reference per order, so every path that
    compensates (cancel, expiry, failure, a debit landing after the end) returns it once."""
    if order.total > 0:
        await wallet.return_escrow(session, reference=f"order-compensate:{order.id}", order_id=order.id,
                                   user_id=order.user_id, amount=order.total, currency=order.currency, memo=memo)


async def on_debit_refused(session: AsyncSession, *, order_id: uuid.UUID, shortfall: int) -> None:
    """``wallet.debit_refused``: the buyer pays the shortfall through a provider (``POST /orders/{id}/pay``)."""
    order = await repository.by_id(session, order_id, fresh=True)
    if order is None:
        return
    if await repository.transition(session, order_id, from_=("created",), to="awaiting_payment", at=utcnow()):
        await publish_order_event(session, order, "order.awaiting_payment", shortfall=shortfall)


async def _debit_and_mark_paid(session: AsyncSession, order: Order, *, actor: Principal | None = None) -> bool:
    """Debit the wallet and mark the order paid together, or neither (the wallet is short,
    or the order left ``created``/``awaiting_payment``: expired or canceled first)."""
    order_lines = await lines(session, order.id)
    try:
        async with session.begin_nested():
            if not await mark_paid(session, order, order_lines, at=utcnow(), actor=actor):
                return False
            await wallet.debit_order(session, order_id=order.id, user_id=order.user_id, amount=order.total,
                                     currency=order.currency)
    except InsufficientFunds:
        await session.refresh(order)
        return False
    return True


async def on_payment_succeeded(session: AsyncSession, *, payment_id: uuid.UUID, order_id: uuid.UUID,
                               user_id: uuid.UUID, provider: str, amount: int, currency: str,
                               gateway: payments.Gateway) -> None:
    """A provider payment for an order arrived (M5). The wallet holds it (credited here too,
    idempotent by reference: it does not matter whether the wallet's own subscriber ran
    first). An order still waiting is debited again; whatever of the payment the order did
    not need — all of it for an order that expired, was canceled or was paid otherwise, the
    excess of an overpayment — goes back to the payer through the provider."""
    await wallet.credit_payment(session, payment_id=payment_id, user_id=user_id, provider=provider, amount=amount,
                                currency=currency, order_id=order_id)
    order = await repository.by_id(session, order_id, fresh=True)
    if order is not None and order.status in UNPAID and order.user_id == user_id \
            and not await _debit_and_mark_paid(session, order):
        # Either still short, or the order left UNPAID meanwhile (the expiry sweep or the
        # buyer won the race: QUALITY M8), and then the late money must go back below.
        await session.refresh(order)
        if order.status in UNPAID:
            return  # still short: the money waits in the wallet for the next attempt
    # The part of the payment still in the wallet was not needed by this order.
    excess = min(amount, await wallet.balance(session, user_id))
    if excess > 0:
        reason = "overpayment" if order is not None and order.status not in ("expired", "canceled", "failed") \
            else "order ended before the payment arrived"
        await payments.refund(session, payment_id=payment_id, amount=excess, reason=reason, gateway=gateway)


async def pay(session: AsyncSession, *, actor: Principal, order_id: uuid.UUID,
              gateway: payments.Gateway) -> tuple[Order, Any]:
    """``POST /orders/{id}/pay``: the buyer's order waiting for money. When the wallet holds
    the total by now, it is debited at once (no payment); otherwise a provider payment for
    the shortfall is started and returned with its ``checkout_url``."""
    order = found_or_raise(await repository.visible(session, order_id, buyer_id=actor.user_id), OrderNotFound,
                           f"There is no order {order_id}.")
    if order.status != "awaiting_payment":
        raise OrderTransitionRefused(f"Order {order.id} is {order.status}; only orders awaiting payment are paid "
                                     "this way.")
    balance = await wallet.balance(session, actor.user_id)
    if balance >= order.total:
        if await _debit_and_mark_paid(session, order, actor=actor):
            return order, None
        # Lost a race: the order left awaiting_payment, or the wallet was spent meanwhile.
        if order.status != "awaiting_payment":
            raise OrderTransitionRefused(f"Order {order.id} is {order.status} now.")
        balance = await wallet.balance(session, actor.user_id)
        if balance >= order.total:
            raise OrderTransitionRefused("The wallet changed while paying; try again.")
    payment = await payments.start_payment(session, user_id=actor.user_id, amount=order.total - balance,
                                           purpose="order", order_id=order.id, gateway=gateway)
    return order, payment


# --- completion, failure and the end of unpaid orders -----------------------------------------------

async def complete(session: AsyncSession, *, order_id: uuid.UUID) -> bool:
    """``entitlement.granted`` for the order: → ``completed`` with ``order.completed``."""
    order = await repository.by_id(session, order_id, fresh=True)
    if order is None:
        return False
    now = utcnow()
    before = order.status
    if not await repository.transition(session, order_id, from_=COMPLETABLE, to="completed", at=now,
                                       completed_at=now):
        return False
    await reached(session, order, "completed", before=before)
    await publish_order_event(session, order, "order.completed", commission_bps=order.commission_bps,
                              lines=[line_data(line) for line in await lines(session, order_id)])
    return True


async def fail(session: AsyncSession, *, order_id: uuid.UUID, reason: str) -> bool:
    """``entitlement.refused``: → ``failed`` (the wallet returns the escrow on the same event)."""
    order = await repository.by_id(session, order_id, fresh=True)
    if order is None:
        return False
    return await close(session, order, from_=FAILABLE, to="failed", reason=reason, event="order.failed")


async def expire_due(session: AsyncSession, *, now: datetime | None = None, limit: int = 200) -> int:
    """The sweep (M5): unpaid orders past ``expires_at`` → ``expired``. A payment racing it
    either paid the order first (then it is no longer unpaid) or finds it expired and is
    refunded (QUALITY M8: paid XOR expired)."""
    expired = 0
    for order_id in await repository.due_for_expiry(session, now=now or utcnow(), limit=limit):
        order = await repository.by_id(session, order_id, fresh=True)
        if order is not None and await close(session, order, from_=UNPAID, to="expired",
                                             reason="Not paid in time", event="order.expired"):
            expired += 1
    return expired
