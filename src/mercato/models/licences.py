"""Licence key pools: keys a publisher supplies for a listing, handed out to order lines."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mercato.kit.clock import utcnow
from mercato.models.base import Base, IdMixin


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
