"""Incremental sync (S1): the catalog change feed, compacted to one row per listing.

Every change to a listing's public view gives its row a new sequence number (taken from
``sync_counters`` under a row lock, so sequence order is commit order) with the content
hash and the public JSON; a listing that leaves the public catalog keeps a tombstone row
until the retention sweep purges it and raises the ``catalog.horizon`` counter.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mercato.models.base import Base


class CatalogChange(Base):
    __tablename__ = "catalog_changes"

    listing_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    hash: Mapped[str | None] = mapped_column(String(64))  # None for a tombstone
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    body: Mapped[str | None] = mapped_column(Text)  # the listing's public JSON, as served; None when deleted
    changed_at: Mapped[datetime]


class SyncCounter(Base):
    """``catalog``: the last sequence number handed out; ``catalog.horizon``: the highest
    sequence number of a purged tombstone (cursors below it need a reset)."""

    __tablename__ = "sync_counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
