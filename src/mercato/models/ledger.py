"""The double-entry ledger (DOMAIN.md "Ledger"): accounts, transactions and their entries.

Amounts are integers in minor units of ``currency`` (API.md). The ledger is the truth of
every balance: ``LedgerAccount.balance`` is a cached sum of the account's entries, moved
only by the ledger repository's guarded statements in the same transaction as the entries.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mercato.kit.clock import utcnow
from mercato.models.base import Base, IdMixin


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
