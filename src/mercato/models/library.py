"""Entitlements: what a user may download and install (their library, L1/L2)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mercato.models.base import Base, IdMixin


class Entitlement(IdMixin, Base):
    """One row per user and listing. Revoking keeps the row (``revoked_at``) so history and
    download counts survive; granting again clears it."""

    __tablename__ = "entitlements"
    __table_args__ = (UniqueConstraint("user_id", "listing_id"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    listing_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("listings.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(16))  # purchase | free | admin
    order_id: Mapped[uuid.UUID | None]
    granted_by: Mapped[uuid.UUID | None]
    granted_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(Text)
    # Downloads by this user of this listing: the refund policy looks at it.
    download_count: Mapped[int] = mapped_column(Integer, default=0)
