"""In-store notifications (O5): one row per recipient."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mercato.models.base import Base, IdMixin, JSONType


class Notification(IdMixin, Base):
    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_inbox", "user_id", "created_at"),
                      Index("ix_notifications_unread", "user_id", "read_at"),
                      UniqueConstraint("user_id", "event_id"))

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # The event that caused it: one notification per (user, event), however often it is delivered.
    event_id: Mapped[uuid.UUID | None]
    kind: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    link: Mapped[str | None] = mapped_column(String(500))
    data: Mapped[dict] = mapped_column(JSONType, default=dict)  # type: ignore[type-arg]
    created_at: Mapped[datetime]
    read_at: Mapped[datetime | None]
