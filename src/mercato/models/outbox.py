"""The transactional outbox: CloudEvents written in the same transaction as the change."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mercato.models.base import Base, JSONType

# BIGINT identity on PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
SequenceType = BigInteger().with_variant(Integer(), "sqlite")


class OutboxEvent(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_type_time", "type", "time"),
        Index("ix_outbox_subject", "subject", "sequence"),
        Index("ix_outbox_unrelayed", "relayed_at", "sequence"),
        Index("ix_outbox_position", "position", unique=True),
    )

    # ``sequence`` is the CloudEvents sequence: monotonic per store.
    sequence: Mapped[int] = mapped_column(SequenceType, primary_key=True, autoincrement=True)
    id: Mapped[uuid.UUID] = mapped_column(unique=True)
    type: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(128))
    time: Mapped[datetime]
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # Who the event concerns (from data.user_id / data.publisher_id): live streams and
    # publisher webhooks select on these.
    user_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    publisher_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    # Set once the relay has fanned the event out to its subscribers' deliveries.
    relayed_at: Mapped[datetime | None]
    # The relay's order: the relay numbers committed events one batch after another under a
    # lock, so an observer that has read every position up to N has seen every event the
    # relay handed out up to N (``sequence`` is allocated at insert, and transactions commit
    # in another order than they insert: a cursor over it would skip a late commit).
    position: Mapped[int | None] = mapped_column(SequenceType)
