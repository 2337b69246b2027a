"""Request and response models of refunds."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from mercato.kit.money import Money
from mercato.kit.schemas import ReadModel, WriteModel

RefundStatus = Literal["requested", "approved", "completed", "rejected"]


class RefundLineWanted(WriteModel):
    line_id: uuid.UUID
    quantity: int = Field(default=1, ge=1, le=1000)


class RefundCreate(WriteModel):
    lines: list[RefundLineWanted] | None = Field(
        default=None, min_length=1, max_length=100,
        description="The lines and units to refund; omitted: everything not refunded yet.")
    reason: str = Field(min_length=3, max_length=2000)


class RefundDecision(WriteModel):
    reason: str | None = Field(default=None, min_length=3, max_length=2000,
                               description="Shown to the buyer (required to reject).")


class RefundRejection(WriteModel):
    reason: str = Field(min_length=3, max_length=2000, description="Shown to the buyer.")


class RefundLineRead(ReadModel):
    line_id: uuid.UUID
    quantity: int
    amount: Money


class RefundRead(ReadModel):
    id: uuid.UUID
    order_id: uuid.UUID
    user_id: uuid.UUID
    status: RefundStatus
    amount: Money
    reason: str
    automatic: bool = Field(description="Approved by the refund policy, without a person deciding.")
    decided_at: datetime | None
    decision_reason: str | None
    lines: list[RefundLineRead]
    created_at: datetime
    updated_at: datetime
