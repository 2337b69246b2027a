"""Orders (DOMAIN.md "Order"): the order, its lines and the shipments of its physical lines.

Amounts are integers in minor units of ``currency`` (API.md).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mercato.models.base import Base, IdMixin, JSONType, TimestampMixin


class Order(IdMixin, TimestampMixin, Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key"),  # INV-4
        Index("ix_orders_status_expires_at", "status", "expires_at"),
        CheckConstraint("total >= 0", name="total_not_negative"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(24), default="created")
    currency: Mapped[str] = mapped_column(String(3))
    subtotal: Mapped[int] = mapped_column(BigInteger)
    discount: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[int] = mapped_column(BigInteger)
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    coupon_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("coupons.id"))
    coupon_code: Mapped[str | None] = mapped_column(String(64))
    shipping_address: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # Prices, commission and refund policy as they were at creation (DOMAIN: an order holds them).
    commission_bps: Mapped[int] = mapped_column(Integer)
    refund_window_days: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime]
    paid_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]  # expired, canceled or failed
    failure_reason: Mapped[str | None] = mapped_column(Text)


class OrderLine(IdMixin, Base):
    __tablename__ = "order_lines"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("refunded_quantity >= 0 AND refunded_quantity <= quantity", name="refunded_within_quantity"),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    listing_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("listings.id"), index=True)
    publisher_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("publishers.id"), index=True)
    title: Mapped[str] = mapped_column(String(100))
    delivery: Mapped[str] = mapped_column(String(16))  # digital | physical
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    unit_price: Mapped[int] = mapped_column(BigInteger)
    discount: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[int] = mapped_column(BigInteger)
    refunded_quantity: Mapped[int] = mapped_column(Integer, default=0)
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    licence_key_id: Mapped[uuid.UUID | None]


class Shipment(IdMixin, TimestampMixin, Base):
    """The physical lines of one publisher in one order: that publisher ships them."""

    __tablename__ = "shipments"
    __table_args__ = (UniqueConstraint("order_id", "publisher_id"),)

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    publisher_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("publishers.id"), index=True)
    status: Mapped[str] = mapped_column(String(24), default="pending")  # pending|awaiting|shipped|delivered|canceled
    carrier: Mapped[str | None] = mapped_column(String(64))
    tracking_number: Mapped[str | None] = mapped_column(String(128))
    shipped_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
