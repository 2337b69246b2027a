"""The wallet (M1) and every ledger movement of the money flow (DOMAIN.md "Ledger").

Each function posts one balanced transaction whose ``reference`` names the business fact
(``order-debit:<order>``), so calling it again (a redelivered event, a retried request)
moves nothing twice. Purchases of price P with commission c: the debit moves P from the
buyer's wallet to ``orders_escrow``; completion pays ``publisher_earnings`` P − ⌊P·c⌋ and
``platform_revenue`` ⌊P·c⌋ per line; a refund before completion returns escrow to the
wallet, a refund after completion reverses the split for the refunded amount.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.ledger import accounts
from mercato.ledger import service as ledger
from mercato.ledger.service import Leg, Posted, transfer
from mercato.models import LedgerEntry, LedgerTransaction


@dataclass(frozen=True)
class Split:
    """One line's share at completion: what the publisher earns and what the platform keeps."""

    publisher_id: uuid.UUID
    amount: int  # the line's total as paid (or, for a refund, the part of it refunded now)
    reversed_before: int = 0  # refunds only: how much of the line earlier refunds reversed

    def commission(self, commission_bps: int) -> int:
        """The commission on this amount. For a refund, the difference of the rounded
        commission on the running refunded total, so that refunding a line in parts gives
        back exactly what the sale took (3 × 333 at 20 %: 66 + 67 + 66 = 199, not 3 × 66)."""
        before = self.reversed_before * commission_bps // 10_000
        return (self.reversed_before + self.amount) * commission_bps // 10_000 - before


async def balance(session: AsyncSession, user_id: uuid.UUID) -> int:
    return await ledger.balance(session, accounts.user_wallet(user_id))


async def history(session: AsyncSession, user_id: uuid.UUID, *, after: tuple[datetime, uuid.UUID] | None,
                  limit: int) -> list[tuple[LedgerEntry, LedgerTransaction]]:
    """The wallet's movements, newest first (nothing when the wallet never moved)."""
    account = await ledger.account(session, accounts.user_wallet(user_id))
    if account is None:
        return []
    return await ledger.entries_of(session, account.id, after=after, limit=limit)


async def credit_welcome(session: AsyncSession, *, user_id: uuid.UUID, amount: int, currency: str) -> Posted:
    """The settings-driven welcome credit (M12), paid by the platform, once per user."""
    return await ledger.post(session, kind="welcome_credit", reference=f"welcome:{user_id}", currency=currency,
                             legs=transfer(accounts.PLATFORM_REVENUE, accounts.user_wallet(user_id), amount),
                             memo="Welcome credit", user_id=user_id)


async def credit_payment(session: AsyncSession, *, payment_id: uuid.UUID, user_id: uuid.UUID, provider: str,
                         amount: int, currency: str, order_id: uuid.UUID | None = None) -> Posted:
    """A provider payment that succeeded lands in the payer's wallet (top-ups, and the
    shortfall of an order, which the order's debit then takes)."""
    return await ledger.post(session, kind="topup", reference=f"payment:{payment_id}", currency=currency,
                             legs=transfer(accounts.provider_clearing(provider), accounts.user_wallet(user_id), amount),
                             memo="Top-up" if order_id is None else "Payment for an order", user_id=user_id,
                             payment_id=payment_id, order_id=order_id)


async def payment_was_credited(session: AsyncSession, payment_id: uuid.UUID) -> bool:
    """Whether a provider payment that succeeded is in the payer's wallet yet (its credit is
    posted: a reaction to ``payment.succeeded``, so shortly after the payment's own state)."""
    return await ledger.posted(session, f"payment:{payment_id}")


async def debit_order(session: AsyncSession, *, order_id: uuid.UUID, user_id: uuid.UUID, amount: int,
                      currency: str) -> Posted:
    """Take an order's total from the buyer's wallet into escrow. Raises
    :class:`~mercato.ledger.errors.InsufficientFunds` (nothing taken) when the wallet is short."""
    return await ledger.post(session, kind="purchase", reference=f"order-debit:{order_id}", currency=currency,
                             legs=transfer(accounts.user_wallet(user_id), accounts.ORDERS_ESCROW, amount),
                             memo="Purchase", user_id=user_id, order_id=order_id)


async def order_was_debited(session: AsyncSession, order_id: uuid.UUID) -> bool:
    """Whether the order's total was taken into escrow (its debit is posted)."""
    return await ledger.posted(session, f"order-debit:{order_id}")


async def return_escrow(session: AsyncSession, *, reference: str, order_id: uuid.UUID, user_id: uuid.UUID,
                        amount: int, currency: str, memo: str, refund_id: uuid.UUID | None = None) -> Posted:
    """Give money held for an order that will not complete (cancel, expiry, failure, or a
    refund before completion) back to the buyer's wallet."""
    return await ledger.post(session, kind="refund", reference=reference, currency=currency,
                             legs=transfer(accounts.ORDERS_ESCROW, accounts.user_wallet(user_id), amount),
                             memo=memo, user_id=user_id, order_id=order_id, refund_id=refund_id)


async def settle_order(session: AsyncSession, *, order_id: uuid.UUID, splits: Iterable[Split], commission_bps: int,
                       currency: str) -> Posted | None:
    """At completion: escrow pays each publisher its lines minus the commission and the
    platform the commission. None for an order that took no money (free)."""
    earned: dict[uuid.UUID, int] = defaultdict(int)
    kept = 0
    taken = 0
    for split in splits:
        fee = split.commission(commission_bps)
        earned[split.publisher_id] += split.amount - fee
        kept += fee
        taken += split.amount
    if taken == 0:
        return None
    legs = [Leg(accounts.ORDERS_ESCROW, -taken)]
    legs += [Leg(accounts.publisher_earnings(publisher), amount) for publisher, amount in earned.items() if amount]
    if kept:
        legs.append(Leg(accounts.PLATFORM_REVENUE, kept))
    return await ledger.post(session, kind="settlement", reference=f"order-settle:{order_id}", currency=currency,
                             legs=legs, memo="Sale", order_id=order_id)


async def reverse_sale(session: AsyncSession, *, refund_id: uuid.UUID, order_id: uuid.UUID, user_id: uuid.UUID,
                       splits: Iterable[Split], commission_bps: int, currency: str) -> Posted | None:
    """A refund after completion: each publisher gives back its share and the platform its
    commission, for the refunded amount, to the buyer's wallet."""
    legs: list[Leg] = []
    total = 0
    kept = 0
    for split in splits:
        fee = split.commission(commission_bps)
        if split.amount - fee:
            legs.append(Leg(accounts.publisher_earnings(split.publisher_id), -(split.amount - fee)))
        kept += fee
        total += split.amount
    if total == 0:
        return None
    if kept:
        legs.append(Leg(accounts.PLATFORM_REVENUE, -kept))
    legs.append(Leg(accounts.user_wallet(user_id), total))
    return await ledger.post(session, kind="refund", reference=f"refund:{refund_id}", currency=currency, legs=legs,
                             memo="Refund", user_id=user_id, order_id=order_id, refund_id=refund_id)
