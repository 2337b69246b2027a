"""Every query on entitlements (the ``entitlements`` table).

One row per user and listing: a grant inserts it or re-activates a revoked one, in one
``INSERT … ON CONFLICT DO UPDATE … WHERE revoked_at IS NOT NULL`` statement, so
concurrent grants leave one row and only one of them reports a change. Revoking and
counting downloads are guarded updates. Every query here is scoped to its user.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.kit.pagination import after_key
from mercato.models import Entitlement


def _insert(session: AsyncSession):  # type: ignore[no-untyped-def]
    dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
    return dialect.insert(Entitlement)


async def of_user(session: AsyncSession, user_id: uuid.UUID, listing_id: uuid.UUID) -> Entitlement | None:
    """The row of this user and listing, active or revoked, as it is in the database now."""
    return await session.scalar(select(Entitlement).where(
        Entitlement.user_id == user_id, Entitlement.listing_id == listing_id)
        .execution_options(populate_existing=True))


async def by_id(session: AsyncSession, entitlement_id: uuid.UUID) -> Entitlement | None:
    return await session.scalar(select(Entitlement).where(Entitlement.id == entitlement_id)
                                .execution_options(populate_existing=True))


async def is_active(session: AsyncSession, user_id: uuid.UUID, listing_id: uuid.UUID) -> bool:
    return await session.scalar(select(Entitlement.id).where(
        Entitlement.user_id == user_id, Entitlement.listing_id == listing_id,
        Entitlement.revoked_at.is_(None))) is not None


async def grant(session: AsyncSession, *, user_id: uuid.UUID, listing_id: uuid.UUID, source: str,
                order_id: uuid.UUID | None, granted_by: uuid.UUID | None, at: datetime) -> uuid.UUID | None:
    """Insert the entitlement, or re-activate a revoked one. Returns its id when this call
    changed something, None when an active entitlement was already there (left as it is)."""
    statement = _insert(session).values(
        id=uuid.uuid4(), user_id=user_id, listing_id=listing_id, source=source, order_id=order_id,
        granted_by=granted_by, granted_at=at, revoked_at=None, revoked_reason=None, download_count=0)
    statement = statement.on_conflict_do_update(
        index_elements=[Entitlement.user_id, Entitlement.listing_id],
        set_={"source": source, "order_id": order_id, "granted_by": granted_by, "granted_at": at,
              "revoked_at": None, "revoked_reason": None},
        where=Entitlement.revoked_at.is_not(None),
    ).returning(Entitlement.id)
    return (await session.execute(statement)).scalar_one_or_none()


async def revoke(session: AsyncSession, entitlement_id: uuid.UUID, *, reason: str, at: datetime) -> bool:
    """Guarded: only an active entitlement is revoked; of two concurrent revokes one wins."""
    result = await session.execute(
        update(Entitlement).where(Entitlement.id == entitlement_id, Entitlement.revoked_at.is_(None))
        .values(revoked_at=at, revoked_reason=reason).returning(Entitlement.id)
        .execution_options(synchronize_session=False))
    return result.first() is not None


async def count_download(session: AsyncSession, user_id: uuid.UUID, listing_id: uuid.UUID) -> bool:
    """``download_count + 1`` on the active entitlement, in one statement; False without one."""
    result = await session.execute(
        update(Entitlement).where(Entitlement.user_id == user_id, Entitlement.listing_id == listing_id,
                                  Entitlement.revoked_at.is_(None))
        .values(download_count=Entitlement.download_count + 1).returning(Entitlement.id)
        .execution_options(synchronize_session=False))
    return result.first() is not None


async def active_of(session: AsyncSession, user_id: uuid.UUID, *, after: tuple[datetime, uuid.UUID] | None,
                    limit: int) -> list[Entitlement]:
    """A user's active entitlements, newest grant first (keyset pages over granted_at, id)."""
    query = select(Entitlement).where(Entitlement.user_id == user_id, Entitlement.revoked_at.is_(None))
    return list(await session.scalars(after_key(query, Entitlement.granted_at, Entitlement.id, after, limit)))


async def search(session: AsyncSession, *, user_id: uuid.UUID | None, listing_ids: Sequence[uuid.UUID] | None,
                 active: bool | None, after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[Entitlement]:
    """Entitlements for admins, filtered; newest grant first."""
    query = select(Entitlement)
    if user_id is not None:
        query = query.where(Entitlement.user_id == user_id)
    if listing_ids is not None:
        query = query.where(Entitlement.listing_id.in_(listing_ids))
    if active is True:
        query = query.where(Entitlement.revoked_at.is_(None))
    elif active is False:
        query = query.where(Entitlement.revoked_at.is_not(None))
    return list(await session.scalars(after_key(query, Entitlement.granted_at, Entitlement.id, after, limit)))
