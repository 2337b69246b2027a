"""Audit rows: inserted and read, never updated or deleted (triggers enforce it too)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.kit.pagination import after_key, count_matching
from mercato.models import AuditEntry


async def add(session: AsyncSession, entry: AuditEntry) -> None:
    session.add(entry)
    await session.flush()


async def count(session: AsyncSession, **filters: Any) -> int:
    return await count_matching(session, _matching(**filters))


async def search(session: AsyncSession, *, after: tuple[datetime, uuid.UUID] | None, limit: int | None,
                 **filters: Any) -> list[AuditEntry]:
    """Newest first; ``after`` is the (at, id) of the last row of the previous page."""
    query = _matching(**filters)
    return list(await session.scalars(after_key(query, AuditEntry.at, AuditEntry.id, after, limit)))


def _matching(*, actor: uuid.UUID | None, action: str | None, resource_type: str | None, resource_id: str | None,
              since: datetime | None, until: datetime | None):  # type: ignore[no-untyped-def]
    query = select(AuditEntry)
    if actor is not None:
        query = query.where(AuditEntry.actor_id == actor)
    if action:
        query = query.where(AuditEntry.action == action)
    if resource_type:
        query = query.where(AuditEntry.resource_type == resource_type)
    if resource_id:
        query = query.where(AuditEntry.resource_id == resource_id)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    return query
