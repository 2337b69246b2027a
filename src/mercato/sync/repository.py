"""Every query of the sync feeds.

The catalog feed's tables (``catalog_changes``, ``sync_counters``) are this module's. Two
reads reach other modules' tables directly because no service offers them as a feed: the
ids of published listings (for the reconcile sweep) and, for the user feed, entitlements,
orders and notifications changed since a position. They are read-only, keyed by the
owning modules' own indexes, and kept here in one place.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.models import (
    CatalogChange,
    Entitlement,
    Installation,
    InstallTask,
    Listing,
    Notification,
    Order,
    SyncCounter,
)

SEQUENCE = "catalog"
HORIZON = "catalog.horizon"


# --- counters -----------------------------------------------------------------------------------

async def next_seq(session: AsyncSession) -> int:
    """The next sequence number. The counter row stays locked until the commit, so changes
    commit in sequence order: a reader never sees seq n+1 before n is visible."""
    value = await session.scalar(update(SyncCounter).where(SyncCounter.name == SEQUENCE)
                                 .values(value=SyncCounter.value + 1).returning(SyncCounter.value))
    if value is None:
        raise RuntimeError("sync_counters has no 'catalog' row: run the migrations")
    return int(value)


async def counters(session: AsyncSession) -> dict[str, int]:
    return {name: int(value) for name, value in await session.execute(select(SyncCounter.name, SyncCounter.value))}


async def raise_horizon(session: AsyncSession, to: int) -> None:
    await session.execute(update(SyncCounter).where(SyncCounter.name == HORIZON)
                          .values(value=case((SyncCounter.value < to, to), else_=SyncCounter.value))
                          .execution_options(synchronize_session=False))


# --- the catalog feed ---------------------------------------------------------------------------

async def change(session: AsyncSession, listing_id: uuid.UUID) -> CatalogChange | None:
    return await session.scalar(select(CatalogChange).where(CatalogChange.listing_id == listing_id))


async def put(session: AsyncSession, *, listing_id: uuid.UUID, seq: int, hash_: str | None, deleted: bool,
              body: str | None, at: datetime, exists: bool) -> None:
    values = {"seq": seq, "hash": hash_, "deleted": deleted, "body": body, "changed_at": at}
    if exists:
        await session.execute(update(CatalogChange).where(CatalogChange.listing_id == listing_id).values(**values)
                              .execution_options(synchronize_session=False))
    else:
        await session.execute(insert(CatalogChange).values(listing_id=listing_id, **values))


async def head(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.max(CatalogChange.seq))) or 0)


FeedRow = tuple[uuid.UUID, int, str | None, bool, str | None]


async def since(session: AsyncSession, seq: int, *, limit: int, live_only: bool = False) -> list[FeedRow]:
    statement = select(CatalogChange.listing_id, CatalogChange.seq, CatalogChange.hash, CatalogChange.deleted,
                       CatalogChange.body).where(CatalogChange.seq > seq)
    if live_only:
        statement = statement.where(CatalogChange.deleted.is_(False))
    rows = await session.execute(statement.order_by(CatalogChange.seq).limit(limit))
    return [tuple(row) for row in rows]  # type: ignore[misc]


async def live_hashes(session: AsyncSession) -> dict[uuid.UUID, str]:
    rows = await session.execute(select(CatalogChange.listing_id, CatalogChange.hash)
                                 .where(CatalogChange.deleted.is_(False)))
    return {listing_id: hash_ for listing_id, hash_ in rows}


async def by_ids(session: AsyncSession, ids: Sequence[uuid.UUID]) -> list[FeedRow]:
    rows = await session.execute(select(CatalogChange.listing_id, CatalogChange.seq, CatalogChange.hash,
                                        CatalogChange.deleted, CatalogChange.body)
                                 .where(CatalogChange.listing_id.in_(ids)).order_by(CatalogChange.seq))
    return [tuple(row) for row in rows]  # type: ignore[misc]


async def live_ids(session: AsyncSession, *, after: uuid.UUID | None, limit: int) -> list[uuid.UUID]:
    statement = select(CatalogChange.listing_id).where(CatalogChange.deleted.is_(False))
    if after is not None:
        statement = statement.where(CatalogChange.listing_id > after)
    return list(await session.scalars(statement.order_by(CatalogChange.listing_id).limit(limit)))


async def purge_tombstones(session: AsyncSession, *, before: datetime) -> int:
    """Delete tombstones older than ``before``; the highest purged sequence number (0: none)."""
    highest = int(await session.scalar(select(func.max(CatalogChange.seq)).where(
        CatalogChange.deleted.is_(True), CatalogChange.changed_at < before)) or 0)
    if highest:
        await session.execute(delete(CatalogChange).where(CatalogChange.deleted.is_(True),
                                                          CatalogChange.seq <= highest)
                              .execution_options(synchronize_session=False))
    return highest


async def published_listing_ids(session: AsyncSession, *, after: uuid.UUID | None, limit: int) -> list[uuid.UUID]:
    """Ids of published listings in id order (the catalog's status index), for reconciling."""
    statement = select(Listing.id).where(Listing.status == "published")
    if after is not None:
        statement = statement.where(Listing.id > after)
    return list(await session.scalars(statement.order_by(Listing.id).limit(limit)))


# --- the user feed ------------------------------------------------------------------------------

Position = tuple[datetime, uuid.UUID]


def _after(moment: Any, row_id: Any, position: Position | None) -> Any:
    if position is None:
        return True
    at, last_id = position
    return or_(moment > at, and_(moment == at, row_id > last_id))


def entitlement_changed_at() -> Any:
    return case((and_(Entitlement.revoked_at.is_not(None), Entitlement.revoked_at > Entitlement.granted_at),
                 Entitlement.revoked_at), else_=Entitlement.granted_at)


def notification_changed_at() -> Any:
    return func.coalesce(Notification.read_at, Notification.created_at)


async def _changed_since(session: AsyncSession, model: Any, owner: Any, moment: Any, user_id: uuid.UUID,
                         position: Position | None, limit: int) -> list[tuple[Any, datetime]]:
    """The user's rows of ``model`` changed after ``position``, with their change time, in order."""
    rows = await session.execute(select(model, moment).where(owner == user_id, _after(moment, model.id, position))
                                 .order_by(moment, model.id).limit(limit))
    return [(row, at) for row, at in rows]


async def entitlements_since(session: AsyncSession, user_id: uuid.UUID, position: Position | None, *,
                             limit: int) -> list[tuple[Entitlement, datetime]]:
    return await _changed_since(session, Entitlement, Entitlement.user_id, entitlement_changed_at(), user_id,
                                position, limit)


async def notifications_since(session: AsyncSession, user_id: uuid.UUID, position: Position | None, *,
                              limit: int) -> list[tuple[Notification, datetime]]:
    return await _changed_since(session, Notification, Notification.user_id, notification_changed_at(), user_id,
                                position, limit)


async def orders_since(session: AsyncSession, user_id: uuid.UUID, position: Position | None, *,
                       limit: int) -> list[tuple[Order, datetime]]:
    return await _changed_since(session, Order, Order.user_id, Order.updated_at, user_id, position, limit)


async def installations_since(session: AsyncSession, user_id: uuid.UUID, position: Position | None, *,
                              limit: int) -> list[tuple[Installation, datetime]]:
    return await _changed_since(session, Installation, Installation.owner_id, Installation.updated_at, user_id,
                                position, limit)


async def tasks_since(session: AsyncSession, user_id: uuid.UUID, position: Position | None, *,
                      limit: int) -> list[tuple[InstallTask, datetime]]:
    return await _changed_since(session, InstallTask, InstallTask.owner_id, InstallTask.updated_at, user_id,
                                position, limit)
