"""Listing versions: the package archives uploaded for a listing, and their review outcome."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mercato.models.base import Base, IdMixin, JSONType, TimestampMixin


class ListingVersion(IdMixin, TimestampMixin, Base):
    """An uploaded package archive of a listing. The artifact itself lives in the artifact
    store under ``sha256``; ``manifest`` and ``checks`` are kept as JSON documents."""

    __tablename__ = "listing_versions"
    __table_args__ = (UniqueConstraint("listing_id", "version"),)

    listing_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("listings.id", ondelete="CASCADE"), index=True)
    version: Mapped[str] = mapped_column(String(100))
    # Byte order equals SemVer precedence (kit.semver.ordering_key): compared bytewise, hence
    # the "C" collation on PostgreSQL (SQLite compares bytewise already).
    ordering: Mapped[str] = mapped_column(String(200).with_variant(String(200, collation="C"), "postgresql"))
    # uploaded | in_review | approved | rejected | changes_requested | yanked
    status: Mapped[str] = mapped_column(String(24), default="uploaded", index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    unpacked_size: Mapped[int] = mapped_column(BigInteger)
    archive_format: Mapped[str] = mapped_column(String(8))
    file_count: Mapped[int] = mapped_column(Integer)
    manifest: Mapped[dict] = mapped_column(JSONType)  # type: ignore[type-arg]
    checks: Mapped[dict] = mapped_column(JSONType)  # type: ignore[type-arg]
    risk_score: Mapped[int] = mapped_column(Integer, default=0)
    changelog: Mapped[str | None] = mapped_column(Text)
    platforms: Mapped[list[str]] = mapped_column(JSONType, default=list)
    host_range: Mapped[str | None] = mapped_column(String(200))
    signature: Mapped[str | None] = mapped_column(String(200))
    signature_key_id: Mapped[str | None] = mapped_column(String(32))
    uploaded_by: Mapped[uuid.UUID | None]
    submitted_at: Mapped[datetime | None]
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[uuid.UUID | None]
    decision_reason: Mapped[str | None] = mapped_column(Text)
    yanked_at: Mapped[datetime | None]
    yank_reason: Mapped[str | None] = mapped_column(Text)
    download_count: Mapped[int] = mapped_column(BigInteger, default=0)
