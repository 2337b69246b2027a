"""Stored outcomes of requests made with an ``Idempotency-Key``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mercato.models.base import Base, JSONType


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_expires", "expires_at"),)

    # The caller's identity (user id, or "anon:<ip>") scopes the key: two callers may
    # use the same key without seeing each other's answers (QUALITY M4).
    owner: Mapped[str] = mapped_column(String(128), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))  # in_flight | done
    # Whoever holds ``lease_id`` may finish the request; a crashed holder's lease runs
    # out at ``locked_until`` and a retry takes over with a new lease.
    lease_id: Mapped[str] = mapped_column(String(36))
    locked_until: Mapped[datetime]
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[Any] = mapped_column(JSONType, nullable=True)
    response_headers: Mapped[dict[str, str] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
