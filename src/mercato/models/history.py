"""Operation history (O2): what happened to a user's purchases, refunds, reviews, publishers,
payouts and installs, one row per (user, event), kept for a retention period."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mercato.models.base import Base, IdMixin, JSONType


class HistoryEntry(IdMixin, Base):
    __tablename__ = "history_entries"
    __table_args__ = (UniqueConstraint("user_id", "event_id"),
                      Index("ix_history_entries_timeline", "user_id", "occurred_at", "id"),
                      Index("ix_history_entries_occurred_at", "occurred_at"))

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # The event it was recorded from: one entry per (user, event), however often it is delivered.
    event_id: Mapped[uuid.UUID]
    kind: Mapped[str] = mapped_column(String(16))  # purchase | refund | review | library | publishing | payout | ...
    action: Mapped[str] = mapped_column(String(64))  # the event type, e.g. order.completed
    subject: Mapped[str] = mapped_column(String(200))
    listing_id: Mapped[uuid.UUID | None]
    title: Mapped[str] = mapped_column(String(200))
    data: Mapped[dict] = mapped_column(JSONType, default=dict)  # type: ignore[type-arg]
    occurred_at: Mapped[datetime]
