"""The review queue: one task per submitted version, waiting for (or having had) a decision."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mercato.models.base import Base, IdMixin, TimestampMixin


class ReviewTask(IdMixin, TimestampMixin, Base):
    """One submitted version waiting for (or having had) a reviewer's decision.

    ``priority_rank`` orders the queue (high = 0 before normal = 1), then ``created_at``.
    A rejection may be appealed once (``appeal_status``); an upheld appeal opens a new task.
    """

    __tablename__ = "review_tasks"
    __table_args__ = (Index("ix_review_tasks_queue", "status", "priority_rank", "created_at"),)

    listing_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("listings.id", ondelete="CASCADE"), index=True)
    version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("listing_versions.id", ondelete="CASCADE"),
                                                  index=True)
    publisher_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("publishers.id", ondelete="CASCADE"), index=True)
    # pending | claimed | approved | rejected | changes_requested
    status: Mapped[str] = mapped_column(String(24), default="pending")
    priority: Mapped[str] = mapped_column(String(8), default="normal")  # normal | high
    priority_rank: Mapped[int] = mapped_column(Integer, default=1)
    note: Mapped[str] = mapped_column(Text, default="")
    claimed_by: Mapped[uuid.UUID | None]
    claimed_at: Mapped[datetime | None] = mapped_column(index=True)
    decided_by: Mapped[uuid.UUID | None]
    decided_at: Mapped[datetime | None]
    reason: Mapped[str | None] = mapped_column(Text)
    # none | pending | upheld | denied
    appeal_status: Mapped[str] = mapped_column(String(16), default="none")
    appeal_reason: Mapped[str | None] = mapped_column(Text)
    appealed_at: Mapped[datetime | None]
    appeal_decided_by: Mapped[uuid.UUID | None]
    appeal_task_id: Mapped[uuid.UUID | None]
