"""Every query on payouts. Decisions are guarded updates (``WHERE status = 'requested'``):
of two concurrent decisions exactly one finds the payout still requested."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.kit.db import refresh_if_held
from mercato.kit.pagination import after_key, count_matching
from mercato.models import Payout


async def add(session: AsyncSession, payout: Payout) -> None:
    session.add(payout)
    await session.flush()


async def by_id(session: AsyncSession, payout_id: uuid.UUID) -> Payout | None:
    return await session.scalar(select(Payout).where(Payout.id == payout_id))


async def decide(session: AsyncSession, payout_id: uuid.UUID, *, status: str, decided_by: uuid.UUID,
                 at: datetime, reason: str | None) -> bool:
    """Move a requested payout to ``status``; False when it is not requested (any more)."""
    moved = await session.scalar(
        update(Payout).where(Payout.id == payout_id, Payout.status == "requested")
        .values(status=status, decided_by=decided_by, decided_at=at, decision_reason=reason, updated_at=at)
        .returning(Payout.id).execution_options(synchronize_session=False))
    if moved is None:
        return False
    await refresh_if_held(session, Payout, payout_id)
    return True


async def search(session: AsyncSession, *, publisher_id: uuid.UUID | None, status: str | None,
                 after: tuple[datetime, uuid.UUID] | None, limit: int,
                 with_total: bool) -> tuple[list[Payout], int | None]:
    statement = select(Payout)
    if publisher_id is not None:
        statement = statement.where(Payout.publisher_id == publisher_id)
    if status is not None:
        statement = statement.where(Payout.status == status)
    total = await count_matching(session, statement) if with_total else None
    return list(await session.scalars(after_key(statement, Payout.created_at, Payout.id, after, limit))), total
