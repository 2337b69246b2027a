"""Money: the double-entry ledger, provider payments, orders, refunds, coupons, payouts and
licence key pools (DOMAIN.md "Payment", "Order", "Ledger", "Refund").

Amounts are integers in minor units of ``currency`` (API.md). The ledger is the truth of
every balance: ``LedgerAccount.balance`` is a cached sum of the account's entries, moved
only by the ledger repository's guarded statements in the same transaction as the entries.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from mercato.kit.clock import utcnow
from mercato.models.base import Base, IdMixin, JSONType, TimestampMixin


class LedgerAccount(IdMixin, Base):
    """``key`` names the account as DOMAIN.md does: ``user_wallet:<user id>``, ``orders_escrow``,
    ``publisher_earnings:<publisher id>``, ``platform_revenue``, ``provider_clearing:<provider>``,
    ``payouts_pending:<publisher id>``."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        # INV-2: the database refuses a negative balance on any account that may not have one.
        CheckConstraint("balance >= 0 OR may_go_negative", name="balance_not_negative"),
    )

    key: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    owner_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    currency: Mapped[str] = mapped_column(String(3))
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    # The provider's clearing account is money owed by the provider (it goes negative on
    # every top-up); a publisher's earnings may go negative when a refund follows a payout.
    may_go_negative: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LedgerTransaction(IdMixin, Base):
    """Two or more entries summing to zero. ``reference`` is unique: the same business fact
    (``order-debit:<order id>``) can be posted once only, which makes every money handler
    idempotent by construction."""

    __tablename__ = "ledger_transactions"

    kind: Mapped[str] = mapped_column(String(32), index=True)
    reference: Mapped[str] = mapped_column(String(160), unique=True)
    memo: Mapped[str] = mapped_column(Text, default="")
    user_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    order_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    payment_id: Mapped[uuid.UUID | None]
    refund_id: Mapped[uuid.UUID | None]
    payout_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class LedgerEntry(IdMixin, Base):
    """Never updated or deleted (INV-6, enforced by triggers). ``amount`` is signed: positive
    raises the account's balance, negative lowers it."""

    __tablename__ = "ledger_entries"
    __table_args__ = (Index("ix_ledger_entries_account_id_created_at", "account_id", "created_at"),)

    transaction_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_transactions.id"), index=True)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    # The account's balance right after this entry: a wallet history shows it without a sum.
    balance_after: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


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


class Refund(IdMixin, TimestampMixin, Base):
    __tablename__ = "refunds"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="requested")
    reason: Mapped[str] = mapped_column(Text, default="")
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    automatic: Mapped[bool] = mapped_column(Boolean, default=False)
    decided_by: Mapped[uuid.UUID | None]
    decided_at: Mapped[datetime | None]
    decision_reason: Mapped[str | None] = mapped_column(Text)


class RefundLine(IdMixin, Base):
    __tablename__ = "refund_lines"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    refund_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("refunds.id", ondelete="CASCADE"), index=True)
    order_line_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("order_lines.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)


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


class Payout(IdMixin, TimestampMixin, Base):
    __tablename__ = "payouts"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    publisher_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("publishers.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default="requested")  # requested | approved | rejected
    requested_by: Mapped[uuid.UUID]
    decided_by: Mapped[uuid.UUID | None]
    decided_at: Mapped[datetime | None]
    decision_reason: Mapped[str | None] = mapped_column(Text)


class LicenceKey(IdMixin, Base):
    """A publisher-supplied key from a listing's pool, handed out to one order line."""

    __tablename__ = "licence_keys"
    __table_args__ = (UniqueConstraint("listing_id", "key"), Index("ix_licence_keys_listing_free", "listing_id",
                                                                   "order_line_id"))

    listing_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("listings.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(500))
    order_line_id: Mapped[uuid.UUID | None] = mapped_column(unique=True)
    assigned_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
