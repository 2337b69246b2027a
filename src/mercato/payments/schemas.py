"""Request and response models of payments."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from mercato.kit.money import Money
from mercato.kit.schemas import ReadModel, WriteModel
from mercato.models import Payment

MIN_TOPUP = 100
MAX_TOPUP = 1_000_000_00

PaymentStatus = Literal["created", "pending", "succeeded", "failed", "canceled", "expired", "partially_refunded",
                        "refunded"]


class TopupCreate(WriteModel):
    amount: int = Field(ge=MIN_TOPUP, le=MAX_TOPUP, strict=True,
                        description=f"Minor units of the store currency, {MIN_TOPUP}–{MAX_TOPUP}.")


class PaymentRead(ReadModel):
    id: uuid.UUID
    status: PaymentStatus
    purpose: Literal["topup", "order"]
    order_id: uuid.UUID | None
    provider: str
    amount: Money
    refunded_amount: Money
    checkout_url: str | None = Field(description="Where the payer pays (the provider's hosted page).")
    failure_reason: str | None
    expires_at: datetime = Field(description="A payment still pending then expires.")
    succeeded_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_model(cls, payment: Payment) -> PaymentRead:
        return cls(id=payment.id, status=payment.status, purpose=payment.purpose,  # type: ignore[arg-type]
                   order_id=payment.order_id, provider=payment.provider,
                   amount=Money(amount=payment.amount, currency=payment.currency),
                   refunded_amount=Money(amount=payment.refunded_amount, currency=payment.currency),
                   checkout_url=payment.checkout_url, failure_reason=payment.failure_reason,
                   expires_at=payment.expires_at, succeeded_at=payment.succeeded_at,
                   created_at=payment.created_at, updated_at=payment.updated_at)


class WebhookReceipt(ReadModel):
    received: bool = True
    effect: str = Field(description="succeeded | failed | canceled | expired (the payment moved now), duplicate, "
                                    "pending, ignored or unknown_payment.")


class SandboxStatus(ReadModel):
    """The sandbox provider's own answer about one of its payments."""

    id: str
    merchant_payment_id: uuid.UUID
    status: Literal["pending", "succeeded", "failed", "canceled", "expired"]
    sandbox_status: str
    amount: int
    currency: str
    refunded_amount: int
    reason: str | None
