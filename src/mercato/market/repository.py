"""Every query on market sources and mirrored listings."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.kit.pagination import after_key
from mercato.models import MarketSource, MirroredListing


def add(session: AsyncSession, source: MarketSource) -> None:
    session.add(source)


async def get(session: AsyncSession, source_id: uuid.UUID) -> MarketSource | None:
    return await session.scalar(select(MarketSource).where(MarketSource.id == source_id))


async def by_url(session: AsyncSession, url: str) -> MarketSource | None:
    return await session.scalar(select(MarketSource).where(MarketSource.url == url))


async def all_sources(session: AsyncSession) -> list[MarketSource]:
    return list(await session.scalars(select(MarketSource).order_by(MarketSource.created_at, MarketSource.id)))


async def enabled_sources(session: AsyncSession) -> list[MarketSource]:
    return list(await session.scalars(select(MarketSource).where(MarketSource.enabled.is_(True))
                                      .order_by(MarketSource.created_at, MarketSource.id)))


async def by_ids(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, MarketSource]:
    if not ids:
        return {}
    return {s.id: s for s in await session.scalars(select(MarketSource).where(MarketSource.id.in_(ids)))}


async def counts(session: AsyncSession) -> dict[uuid.UUID, int]:
    rows = await session.execute(select(MirroredListing.source_id, func.count())
                                 .group_by(MirroredListing.source_id))
    return {source_id: count for source_id, count in rows.all()}


async def delete_source(session: AsyncSession, source_id: uuid.UUID) -> None:
    await session.execute(delete(MirroredListing).where(MirroredListing.source_id == source_id))
    await session.execute(delete(MarketSource).where(MarketSource.id == source_id))


async def record_outcome(session: AsyncSession, source_id: uuid.UUID, **values: Any) -> None:
    await session.execute(update(MarketSource).where(MarketSource.id == source_id).values(**values))


async def count_failure(session: AsyncSession, source_id: uuid.UUID, *, at: datetime, error: str) -> None:
    await session.execute(update(MarketSource).where(MarketSource.id == source_id).values(
        failure_count=MarketSource.failure_count + 1, last_error=error, last_synced_at=at, health="failing",
        updated_at=at))


# --- mirrored listings ----------------------------------------------------------------------------

async def mirrored(session: AsyncSession, source_id: uuid.UUID, remote_ids: Sequence[uuid.UUID]
                   ) -> dict[uuid.UUID, MirroredListing]:
    if not remote_ids:
        return {}
    rows = await session.scalars(select(MirroredListing).where(
        MirroredListing.source_id == source_id, MirroredListing.remote_id.in_(remote_ids)))
    return {row.remote_id: row for row in rows}


def add_listing(session: AsyncSession, row: MirroredListing) -> None:
    session.add(row)


async def remove_listings(session: AsyncSession, source_id: uuid.UUID, remote_ids: Sequence[uuid.UUID]) -> int:
    if not remote_ids:
        return 0
    result = await session.execute(delete(MirroredListing).where(
        MirroredListing.source_id == source_id, MirroredListing.remote_id.in_(remote_ids)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def remove_all_listings(session: AsyncSession, source_id: uuid.UUID) -> int:
    result = await session.execute(delete(MirroredListing).where(MirroredListing.source_id == source_id))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def listing(session: AsyncSession, listing_id: uuid.UUID) -> MirroredListing | None:
    return await session.scalar(select(MirroredListing).join(MarketSource).where(
        MirroredListing.id == listing_id, MarketSource.enabled.is_(True)))


async def search(session: AsyncSession, *, source_id: uuid.UUID | None, q: str | None,
                 after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[MirroredListing]:
    """Mirrored listings of enabled sources, newest change first."""
    query = select(MirroredListing).join(MarketSource).where(MarketSource.enabled.is_(True))
    if source_id is not None:
        query = query.where(MirroredListing.source_id == source_id)
    if q:
        escaped = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        query = query.where(or_(func.lower(MirroredListing.name).like(pattern, escape="\\"),
                                func.lower(MirroredListing.slug).like(pattern, escape="\\")))
    return list(await session.scalars(after_key(query, MirroredListing.updated_at, MirroredListing.id, after, limit)))
