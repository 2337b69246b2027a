"""Outgoing webhooks (E2): subscriptions, one delivery per event and webhook, and the
attempts made for each delivery."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mercato.models.base import Base, IdMixin, JSONType, TimestampMixin


class Webhook(IdMixin, TimestampMixin, Base):
    """A URL subscribed to event types: a publisher's (its events only) or store-wide
    (``publisher_id`` null, admins only: every event of its types).

    The secrets are kept as given to the subscriber (``whsec_…``): signing needs them. During
    a rotation the previous secret keeps signing alongside until ``previous_secret_expires_at``.
    """

    __tablename__ = "webhooks"

    publisher_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("publishers.id", ondelete="CASCADE"),
                                                           index=True)
    created_by: Mapped[uuid.UUID | None]
    url: Mapped[str] = mapped_column(String(2000))
    event_types: Mapped[list[str]] = mapped_column(JSONType)
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_expires_at: Mapped[datetime | None]
    active: Mapped[bool] = mapped_column(default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    disabled_at: Mapped[datetime | None]
    # Failed attempts in a row, over all its deliveries; a success resets it.
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)


class WebhookDelivery(IdMixin, Base):
    """One event for one webhook. ``id`` is the ``webhook-id`` header, the same on every retry.

    ``state``: pending -> sending (leased until ``next_attempt_at``) -> succeeded | pending
    (retry at ``next_attempt_at``) | failed (attempts exhausted). A ``sending`` row whose
    lease ran out (the sender crashed) is taken again.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", "event_id"),
        Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_history", "webhook_id", "created_at"),
    )

    webhook_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_id: Mapped[uuid.UUID]
    event_type: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_duration_ms: Mapped[int | None]
    succeeded_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class WebhookAttempt(Base):
    """One HTTP request made for a delivery, kept for its history."""

    __tablename__ = "webhook_attempts"

    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
                                                   primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime]
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)
