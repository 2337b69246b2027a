"""Every query on notifications; each is scoped to the recipient (``user_id``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.kit.pagination import after_key
from mercato.models import Notification


async def add_once(session: AsyncSession, rows: list[dict[str, Any]]) -> list[Notification]:
    """Insert notifications, skipping any (user, event) pair that already has one (a
    redelivered event): ``INSERT … ON CONFLICT DO NOTHING``. Returns the rows inserted."""
    if not rows:
        return []
    dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(Notification).values(rows).on_conflict_do_nothing(
        index_elements=[Notification.user_id, Notification.event_id]).returning(Notification.id)
    inserted = list((await session.execute(statement)).scalars())
    if not inserted:
        return []
    found = await session.scalars(select(Notification).where(Notification.id.in_(inserted))
                                  .order_by(Notification.user_id))
    return list(found)


async def own(session: AsyncSession, user_id: uuid.UUID, notification_id: uuid.UUID) -> Notification | None:
    return await session.scalar(select(Notification).where(Notification.id == notification_id,
                                                           Notification.user_id == user_id)
                                .execution_options(populate_existing=True))


async def inbox(session: AsyncSession, user_id: uuid.UUID, *, unread_only: bool,
                after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[Notification]:
    query = select(Notification).where(Notification.user_id == user_id)
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    return list(await session.scalars(after_key(query, Notification.created_at, Notification.id, after, limit)))


async def unread_count(session: AsyncSession, user_id: uuid.UUID) -> int:
    return int(await session.scalar(select(func.count()).select_from(Notification).where(
        Notification.user_id == user_id, Notification.read_at.is_(None))) or 0)


async def mark_read(session: AsyncSession, user_id: uuid.UUID, notification_id: uuid.UUID, at: datetime) -> bool:
    result = await session.execute(
        update(Notification).where(Notification.id == notification_id, Notification.user_id == user_id,
                                   Notification.read_at.is_(None))
        .values(read_at=at).execution_options(synchronize_session=False))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def mark_all_read(session: AsyncSession, user_id: uuid.UUID, at: datetime) -> int:
    result = await session.execute(
        update(Notification).where(Notification.user_id == user_id, Notification.read_at.is_(None))
        .values(read_at=at).execution_options(synchronize_session=False))
    return int(result.rowcount)  # type: ignore[attr-defined]
