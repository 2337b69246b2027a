"""Market sources (O6): other Mercato stores whose catalogs this store mirrors read-only
through their sync feed, and the mirrored listings."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mercato.kit.clock import utcnow
from mercato.models.base import Base, IdMixin, JSONType, TimestampMixin


class MarketSource(IdMixin, TimestampMixin, Base):
    __tablename__ = "market_sources"

    name: Mapped[str] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(String(2000), unique=True)  # the store's base URL, no trailing slash
    enabled: Mapped[bool] = mapped_column(default=True)
    cursor: Mapped[str | None] = mapped_column(String(200))  # of the source's GET /sync/catalog
    etag: Mapped[str | None] = mapped_column(String(200))
    last_synced_at: Mapped[datetime | None]  # the last attempt, successful or not
    last_success_at: Mapped[datetime | None]
    failure_count: Mapped[int] = mapped_column(default=0)  # failed attempts in a row
    last_error: Mapped[str | None] = mapped_column(Text)
    health: Mapped[str] = mapped_column(String(16), default="never")  # never | ok | failing


class MirroredListing(IdMixin, Base):
    __tablename__ = "mirrored_listings"
    __table_args__ = (UniqueConstraint("source_id", "remote_id"),
                      Index("ix_mirrored_listings_browse", "updated_at", "id"))

    source_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("market_sources.id", ondelete="CASCADE"))
    remote_id: Mapped[uuid.UUID]  # the listing's id on the source store
    slug: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    hash: Mapped[str] = mapped_column(String(64))  # the source feed's content hash
    data: Mapped[dict] = mapped_column(JSONType, default=dict)  # type: ignore[type-arg]  # its public listing JSON
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
