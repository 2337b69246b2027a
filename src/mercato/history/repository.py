"""Every query on history entries."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.kit.pagination import after_key, count_matching
from mercato.models import HistoryEntry


async def known_recipients(session: AsyncSession, event_id: uuid.UUID) -> set[uuid.UUID]:
    return set(await session.scalars(select(HistoryEntry.user_id).where(HistoryEntry.event_id == event_id)))


def add(session: AsyncSession, entries: Sequence[HistoryEntry]) -> None:
    session.add_all(entries)


def _filtered(user_id: uuid.UUID, *, kinds: Sequence[str] | None, actions: Sequence[str] | None,
              since: datetime | None, until: datetime | None) -> Select[Any]:
    statement = select(HistoryEntry).where(HistoryEntry.user_id == user_id)
    if kinds:
        statement = statement.where(HistoryEntry.kind.in_(kinds))
    if actions:
        statement = statement.where(HistoryEntry.action.in_(actions))
    if since is not None:
        statement = statement.where(HistoryEntry.occurred_at >= since)
    if until is not None:
        statement = statement.where(HistoryEntry.occurred_at < until)
    return statement


async def of_user(session: AsyncSession, user_id: uuid.UUID, *, kinds: Sequence[str] | None,
                  actions: Sequence[str] | None, since: datetime | None, until: datetime | None,
                  after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[HistoryEntry]:
    """The user's entries, newest first, after the keyset position ``after``."""
    statement = _filtered(user_id, kinds=kinds, actions=actions, since=since, until=until)
    return list(await session.scalars(after_key(statement, HistoryEntry.occurred_at, HistoryEntry.id, after, limit)))


async def count(session: AsyncSession, user_id: uuid.UUID, *, kinds: Sequence[str] | None,
                actions: Sequence[str] | None, since: datetime | None, until: datetime | None) -> int:
    return await count_matching(session, _filtered(user_id, kinds=kinds, actions=actions, since=since, until=until))


async def purge_before(session: AsyncSession, cutoff: datetime, *, limit: int) -> int:
    """Delete up to ``limit`` entries older than ``cutoff``; how many went."""
    doomed = select(HistoryEntry.id).where(HistoryEntry.occurred_at < cutoff).limit(limit)
    ids = list(await session.scalars(doomed))
    if ids:
        await session.execute(delete(HistoryEntry).where(HistoryEntry.id.in_(ids))
                              .execution_options(synchronize_session=False))
    return len(ids)
