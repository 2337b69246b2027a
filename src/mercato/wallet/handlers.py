"""The wallet's reactions (DOMAIN.md saga table): money from a provider lands in the
payer's wallet; new users get the welcome credit the policies set (M12). The checkout
saga's escrow steps are the orders module's (orders/handlers.py), which calls this
module's service: the wallet never imports orders.

Ledger postings are idempotent by reference, and the bus records each handled event in
the same transaction, so a redelivered event moves no money twice.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.accounts.events import UserRegistered
from mercato.bus.context import current_bus
from mercato.bus.events import CloudEvent
from mercato.bus.registry import subscribe
from mercato.payments.events import PaymentSucceeded
from mercato.policies import service as policies
from mercato.wallet import service


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
