"""Every query on listing versions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.kit.db import insert_unless_conflict, refresh_if_held
from mercato.kit.pagination import after_key
from mercato.models import Listing, ListingVersion

PUBLIC_STATUSES = ("approved", "yanked")


async def add(session: AsyncSession, version: ListingVersion) -> bool:
    """Insert; False when the listing already has this version (the unique index decides)."""
    return await insert_unless_conflict(session, version)


async def exists(session: AsyncSession, listing_id: uuid.UUID, version: str) -> bool:
    return await session.scalar(select(ListingVersion.id).where(
        ListingVersion.listing_id == listing_id, ListingVersion.version == version)) is not None


async def get(session: AsyncSession, listing_id: uuid.UUID, version: str, *,
              statuses: Sequence[str] | None = None) -> ListingVersion | None:
    statement = select(ListingVersion).where(ListingVersion.listing_id == listing_id,
                                             ListingVersion.version == version)
    if statuses is not None:
        statement = statement.where(ListingVersion.status.in_(statuses))
    return await session.scalar(statement)


async def by_id(session: AsyncSession, version_id: uuid.UUID) -> ListingVersion | None:
    return await session.get(ListingVersion, version_id)


async def of_listing(session: AsyncSession, listing_id: uuid.UUID, *, statuses: Sequence[str] | None,
                     after: tuple[str, uuid.UUID] | None, limit: int) -> list[ListingVersion]:
    """Newest (highest SemVer) first."""
    statement = select(ListingVersion).where(ListingVersion.listing_id == listing_id)
    if statuses is not None:
        statement = statement.where(ListingVersion.status.in_(statuses))
    return list(await session.scalars(after_key(statement, ListingVersion.ordering, ListingVersion.id, after, limit)))


def is_release() -> Any:
    """A release, not a pre-release: its ordering key ends with ``~`` (kit.semver.ordering_key)."""
    return ListingVersion.ordering.like("%~")


async def latest_approved(session: AsyncSession, listing_id: uuid.UUID) -> ListingVersion | None:
    """"Latest": the approved release of highest precedence; a pre-release only while the
    listing has no approved release at all (pre-releases are otherwise taken only by name)."""
    return await session.scalar(select(ListingVersion).where(
        ListingVersion.listing_id == listing_id, ListingVersion.status == "approved")
        .order_by(case((is_release(), 1), else_=0).desc(), ListingVersion.ordering.desc()).limit(1))


async def newest_uploaded(session: AsyncSession, listing_id: uuid.UUID) -> ListingVersion | None:
    return await session.scalar(select(ListingVersion).where(
        ListingVersion.listing_id == listing_id, ListingVersion.status == "uploaded")
        .order_by(ListingVersion.created_at.desc()).limit(1))


async def in_review(session: AsyncSession, listing_id: uuid.UUID) -> ListingVersion | None:
    return await session.scalar(select(ListingVersion).where(
        ListingVersion.listing_id == listing_id, ListingVersion.status == "in_review").limit(1))


async def transition(session: AsyncSession, version_id: uuid.UUID, *, from_: Sequence[str], to: str,
                     at: datetime, **values: Any) -> bool:
    result = await session.execute(
        update(ListingVersion).where(ListingVersion.id == version_id, ListingVersion.status.in_(from_))
        .values(status=to, updated_at=at, **values).returning(ListingVersion.id)
        .execution_options(synchronize_session=False))
    changed = result.first() is not None
    if changed:
        await refresh_if_held(session, ListingVersion, version_id)
    return changed


async def count_download(session: AsyncSession, version_id: uuid.UUID) -> None:
    await session.execute(update(ListingVersion).where(ListingVersion.id == version_id)
                          .values(download_count=ListingVersion.download_count + 1)
                          .execution_options(synchronize_session=False))


# --- read model of the Open VSX adapter (mercato.openvsx) -----------------------------------------

async def published_latest_of_format(session: AsyncSession, *, archive_format: str, text: str | None,
                                     publisher_ids: Sequence[uuid.UUID] | None,
                                     limit: int) -> list[tuple[Listing, ListingVersion]]:
    """Published listings whose latest approved version has ``archive_format``, with that
    version; most downloaded first. ``text`` matches slug, name or summary (case-insensitive)."""
    statement = (select(Listing, ListingVersion).join(ListingVersion, ListingVersion.id == Listing.latest_version_id)
                 .where(Listing.status == "published", ListingVersion.archive_format == archive_format))
    if text:
        pattern = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        statement = statement.where(or_(func.lower(Listing.slug).like(pattern, escape="\\"),
                                        func.lower(Listing.name).like(pattern, escape="\\"),
                                        func.lower(Listing.summary).like(pattern, escape="\\")))
    if publisher_ids is not None:
        statement = statement.where(Listing.publisher_id.in_(publisher_ids))
    rows = await session.execute(statement.order_by(Listing.download_count.desc(), Listing.slug).limit(limit))
    return [(listing, version) for listing, version in rows.all()]
