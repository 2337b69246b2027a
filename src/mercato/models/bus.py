"""Bus bookkeeping: per-subscriber deliveries (the source of truth, never the broker),
the inbox of processed events, and leases for scheduled sweeps."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mercato.models.base import Base
from mercato.models.outbox import SequenceType


class EventDelivery(Base):
    """One event for one subscriber. ``state``: pending -> done | dead (dead letter)."""

    __tablename__ = "event_deliveries"
    __table_args__ = (
        Index("ix_event_deliveries_due", "state", "next_attempt_at"),
        Index("ix_event_deliveries_order", "subscriber", "subject", "sequence"),
    )

    subscriber: Mapped[str] = mapped_column(String(100), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # Public handle (dead letters are replayed by it).
    id: Mapped[uuid.UUID] = mapped_column(unique=True)
    sequence: Mapped[int] = mapped_column(SequenceType)
    subject: Mapped[str] = mapped_column(String(128))
    event_type: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    done_at: Mapped[datetime | None]


class ProcessedEvent(Base):
    """Written in the handler's own transaction: a repeated delivery finds it and does nothing."""

    __tablename__ = "processed_events"

    subscriber: Mapped[str] = mapped_column(String(100), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    processed_at: Mapped[datetime]


class SweepLease(Base):
    """Who may run a periodic sweep now: a guarded update takes an expired lease."""

    __tablename__ = "sweep_leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]
    last_run_at: Mapped[datetime | None]
    last_ok: Mapped[bool | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class BusCursor(Base):
    """How far an observer (a subscriber that takes events in batches) has read the relay's
    positions, and the retry state of the event at its head. Advanced in the same
    transaction as the observer's effects, so a batch counts exactly once."""

    __tablename__ = "bus_cursors"

    subscriber: Mapped[str] = mapped_column(String(100), primary_key=True)
    position: Mapped[int] = mapped_column(SequenceType, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime]
