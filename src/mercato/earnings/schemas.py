"""Request and response models of earnings and payouts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from mercato.kit.money import MAX_AMOUNT, Money, SignedMoney
from mercato.kit.schemas import Page, ReadModel, WriteModel
from mercato.models import Payout

PayoutStatus = Literal["requested", "approved", "rejected"]


class EarningsMovement(ReadModel):
    """One entry of the publisher's earnings account, with its transaction."""

    id: uuid.UUID
    transaction_id: uuid.UUID
    kind: str = Field(description="settlement (a sale), refund, payout_request, payout_rejected")
    amount: SignedMoney
    balance_after: SignedMoney
    memo: str
    order_id: uuid.UUID | None
    refund_id: uuid.UUID | None
    payout_id: uuid.UUID | None
    created_at: datetime


class EarningsRead(ReadModel):
    publisher: str
    available: SignedMoney = Field(description="What may be paid out now (negative when refunds followed a payout).")
    pending_payouts: Money = Field(description="Requested payouts not yet decided.")
    paid_out: Money = Field(description="Approved payouts, all time.")
    total_earned: Money = Field(description="Sales after the commission, all time.")
    total_refunded: Money = Field(description="Given back for refunds after completion, all time.")
    movements: Page[EarningsMovement] = Field(description="The earnings account's movements, newest first.")


class PayoutCreate(WriteModel):
    amount: int = Field(ge=1, le=MAX_AMOUNT, description="Integer minor units of the store currency.")


class PayoutReject(WriteModel):
    reason: str = Field(min_length=3, max_length=2000)


class PayoutRead(ReadModel):
    id: uuid.UUID
    publisher_id: uuid.UUID
    publisher: str
    amount: Money
    status: PayoutStatus
    requested_by: uuid.UUID
    decided_by: uuid.UUID | None
    decided_at: datetime | None
    decision_reason: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_model(cls, payout: Payout, *, publisher: str) -> PayoutRead:
        return cls(id=payout.id, publisher_id=payout.publisher_id, publisher=publisher,
                   amount=Money(amount=payout.amount, currency=payout.currency),
                   status=payout.status,  # type: ignore[arg-type]
                   requested_by=payout.requested_by, decided_by=payout.decided_by, decided_at=payout.decided_at,
                   decision_reason=payout.decision_reason, created_at=payout.created_at, updated_at=payout.updated_at)
