"""The wallet's reactions (DOMAIN.md saga table): money from a provider lands in the
payer's wallet; new users get the welcome credit the policies set (M12).

Ledger postings are idempotent by reference, and the bus records each handled event in
the same transaction, so a redelivered event moves no money twice.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus.context import current_bus
from mercato.bus.events import CloudEvent
from mercato.bus.registry import subscribe
from mercato.kit.failpoints import failpoint
from mercato.policies import service as policies
from mercato.wallet import service


@subscribe("user.registered", name="wallet.welcome_credit")
async def welcome_credit(session: AsyncSession, event: CloudEvent) -> None:
    amount = (await policies.current(session)).welcome_credit
    if amount > 0:
        await service.credit_welcome(session, user_id=uuid.UUID(event.data["user_id"]), amount=amount,
                                     currency=current_bus().settings.currency)


@subscribe("payment.succeeded", name="wallet.credit_payment")
async def credit_payment(session: AsyncSession, event: CloudEvent) -> None:
    data = event.data
    await service.credit_payment(session, payment_id=uuid.UUID(data["payment_id"]), user_id=uuid.UUID(data["user_id"]),
                                 provider=data["provider"], amount=int(data["amount"]), currency=data["currency"],
                                 order_id=uuid.UUID(data["order_id"]) if data.get("order_id") else None)


# --- the checkout saga (DOMAIN.md "Saga"): the wallet's part ------------------------------------

@subscribe("order.created", name="wallet.debit_order")
async def debit_order(session: AsyncSession, event: CloudEvent) -> None:
    """Take a new order's total into escrow: ``wallet.debited``, or ``wallet.debit_refused``
    with the shortfall when the wallet holds less (nothing taken then)."""
    from mercato.bus.outbox import publish
    from mercato.ledger.errors import InsufficientFunds
    from mercato.orders import service as orders

    data = event.data
    order_id, user_id, total = uuid.UUID(data["order_id"]), uuid.UUID(data["user_id"]), int(data["total"])
    # Free orders take nothing; an order that ended (canceled, expired) before this ran needs no money.
    if total <= 0 or await orders.status_of(session, order_id) != "created":
        return
    reply = {"order_id": str(order_id), "user_id": str(user_id), "total": total, "currency": data["currency"]}
    try:
        posted = await service.debit_order(session, order_id=order_id, user_id=user_id, amount=total,
                                           currency=data["currency"])
    except InsufficientFunds:
        held = await service.balance(session, user_id)
        await publish(session, CloudEvent(type="wallet.debit_refused", subject=str(order_id), data={
            **reply, "balance": held, "shortfall": total - held}))
        await failpoint("saga.after_debit_refused")
        return
    await publish(session, CloudEvent(type="wallet.debited", subject=str(order_id), data={
        **reply, "transaction_id": str(posted.transaction.id)}))
    await failpoint("saga.after_debit")


@subscribe("entitlement.refused", "order.canceled", "order.expired", "order.failed", name="wallet.return_escrow")
async def return_escrow(session: AsyncSession, event: CloudEvent) -> None:
    """Give the buyer back what an order that will not complete took (compensation). Only
    an order whose debit was posted holds money; every path returns it under one reference
    (``order-compensate:<order>``), so a refusal followed by ``order.failed`` returns it once.
    A debit that lands after this ran is returned by the orders module on ``wallet.debited``."""
    from mercato.ledger import repository as ledger_repository

    data = event.data
    order_id = uuid.UUID(data["order_id"])
    debit = await ledger_repository.transaction_by_reference(session, f"order-debit:{order_id}")
    total = int(data.get("total") or 0)
    if debit is None or total <= 0:
        return
    await service.return_escrow(session, reference=f"order-compensate:{order_id}", order_id=order_id,
                                user_id=uuid.UUID(data["user_id"]), amount=total, currency=data["currency"],
                                memo="Order refunded: it did not complete")
    await failpoint("saga.after_compensation")


@subscribe("order.completed", name="earnings.settle")
async def settle_order(session: AsyncSession, event: CloudEvent) -> None:
    """At completion escrow pays each publisher its lines minus the commission frozen on the
    order, and the platform the commission (M7)."""
    data = event.data
    await service.settle_order(session, order_id=uuid.UUID(data["order_id"]),
                               splits=[service.Split(uuid.UUID(line["publisher_id"]), int(line["total"]))
                                       for line in data.get("lines", [])],
                               commission_bps=int(data["commission_bps"]), currency=data["currency"])
    await failpoint("saga.after_settlement")
