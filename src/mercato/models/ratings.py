"""Ratings: a user's rating and written review of a listing, and the publisher's reply."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mercato.models.base import Base, IdMixin, TimestampMixin


class ListingReview(IdMixin, TimestampMixin, Base):
    """A user's rating (1–5) and written review of a listing; one per user and listing."""

    __tablename__ = "listing_reviews"
    __table_args__ = (UniqueConstraint("listing_id", "user_id"),)

    listing_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("listings.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    rating: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(120), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    hidden: Mapped[bool] = mapped_column(default=False)
    hidden_reason: Mapped[str | None] = mapped_column(Text)
    hidden_by: Mapped[uuid.UUID | None]
    reply: Mapped[str | None] = mapped_column(Text)
    reply_by: Mapped[uuid.UUID | None]
    replied_at: Mapped[datetime | None]
