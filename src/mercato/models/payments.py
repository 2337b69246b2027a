"""Payments: money coming in through a provider (DOMAIN.md "Payment"), in minor units of ``currency``."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mercato.models.base import Base, IdMixin, TimestampMixin


class Payment(IdMixin, TimestampMixin, Base):
    """Money coming in through a provider: a wallet top-up, or the shortfall of an order."""

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("provider", "provider_ref"),
        Index("ix_payments_status_next_poll_at", "status", "next_poll_at"),
        CheckConstraint("amount > 0", name="amount_positive"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    provider: Mapped[str] = mapped_column(String(32))
    provider_ref: Mapped[str | None] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(16))  # topup | order
    order_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(24), default="created")
    checkout_url: Mapped[str | None] = mapped_column(String(1000))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    expires_at: Mapped[datetime]
    succeeded_at: Mapped[datetime | None]
    # The poller's schedule (payments pending longer than the policy's threshold).
    next_poll_at: Mapped[datetime | None]
    poll_attempts: Mapped[int] = mapped_column(Integer, default=0)
