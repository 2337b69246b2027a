"""The sandbox payment provider's own books (docs/payments.md).

Kept apart from the store's ``payments`` table on purpose: the sandbox plays an outside
provider, so the store learns about a payment only from its webhooks or by asking it
(the poller), never by reading this table.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mercato.kit.clock import utcnow
from mercato.models.base import Base


class SandboxPayment(Base):
    """One checkout at the sandbox provider: ``open`` → ``processing`` → ``succeeded`` |
    ``failed`` | ``canceled`` | ``expired`` (a processing one becomes succeeded at ``confirm_at``)."""

    __tablename__ = "sandbox_payments"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    ref: Mapped[str] = mapped_column(String(64), primary_key=True)
    merchant_payment_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default="open")
    card_last4: Mapped[str | None] = mapped_column(String(4))
    reason: Mapped[str | None] = mapped_column(Text)
    confirm_at: Mapped[datetime | None]
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
