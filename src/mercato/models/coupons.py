"""Coupons and their redemptions, one per order that used a code."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mercato.kit.clock import utcnow
from mercato.models.base import Base, IdMixin, TimestampMixin


class Coupon(IdMixin, TimestampMixin, Base):
    __tablename__ = "coupons"
    __table_args__ = (
        CheckConstraint("value > 0", name="value_positive"),
        CheckConstraint("max_redemptions IS NULL OR redemptions <= max_redemptions", name="within_limit"),
    )

    code: Mapped[str] = mapped_column(String(64), unique=True)  # stored upper-case
    kind: Mapped[str] = mapped_column(String(16))  # percent | fixed
    value: Mapped[int] = mapped_column(BigInteger)  # percent 1..100, or minor units
    currency: Mapped[str] = mapped_column(String(3))
    scope: Mapped[str] = mapped_column(String(16))  # store | publisher | listing
    publisher_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("publishers.id"), index=True)
    listing_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("listings.id"), index=True)
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    max_redemptions: Mapped[int | None] = mapped_column(Integer)
    per_user_limit: Mapped[int | None] = mapped_column(Integer)
    redemptions: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[uuid.UUID | None]


class CouponRedemption(IdMixin, Base):
    __tablename__ = "coupon_redemptions"
    __table_args__ = (UniqueConstraint("order_id"), Index("ix_coupon_redemptions_coupon_user", "coupon_id", "user_id"))

    coupon_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("coupons.id"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
