"""Every query on review tasks. Decisions are guarded updates: of two reviewers acting at
once, one wins and the other gets a refusal."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.kit.db import refresh_if_held
from mercato.models import ReviewTask


async def add(session: AsyncSession, task: ReviewTask) -> None:
    session.add(task)
    await session.flush()


async def get(session: AsyncSession, task_id: uuid.UUID) -> ReviewTask | None:
    return await session.get(ReviewTask, task_id)


def _queue_filter(statuses: Sequence[str] | None, exclude_publishers: Sequence[uuid.UUID]) -> list[Any]:
    clauses: list[Any] = []
    if statuses:
        clauses.append(ReviewTask.status.in_(statuses))
    if exclude_publishers:
        clauses.append(ReviewTask.publisher_id.not_in(exclude_publishers))
    return clauses


async def queue(session: AsyncSession, *, statuses: Sequence[str] | None, exclude_publishers: Sequence[uuid.UUID],
                after: tuple[int, datetime, uuid.UUID] | None, limit: int) -> list[ReviewTask]:
    """By priority, then oldest first (the SLA order)."""
    statement = select(ReviewTask).where(*_queue_filter(statuses, exclude_publishers))
    if after is not None:
        rank, at, task_id = after
        statement = statement.where(or_(
            ReviewTask.priority_rank > rank,
            and_(ReviewTask.priority_rank == rank, ReviewTask.created_at > at),
            and_(ReviewTask.priority_rank == rank, ReviewTask.created_at == at, ReviewTask.id > task_id)))
    rows = await session.scalars(statement.order_by(ReviewTask.priority_rank, ReviewTask.created_at, ReviewTask.id)
                                 .limit(limit))
    return list(rows)


async def count(session: AsyncSession, *, statuses: Sequence[str] | None,
                exclude_publishers: Sequence[uuid.UUID] = ()) -> int:
    return int(await session.scalar(select(func.count()).select_from(ReviewTask)
                                    .where(*_queue_filter(statuses, exclude_publishers))) or 0)


async def move(session: AsyncSession, task_id: uuid.UUID, *, where: dict[str, Any], values: dict[str, Any]) -> bool:
    """Guarded change: only when every column in ``where`` has its value."""
    conditions = [getattr(ReviewTask, column) == value for column, value in where.items()]
    result = await session.execute(update(ReviewTask).where(ReviewTask.id == task_id, *conditions)
                                   .values(**values).returning(ReviewTask.id)
                                   .execution_options(synchronize_session=False))
    changed = result.first() is not None
    if changed:
        await refresh_if_held(session, ReviewTask, task_id)
    return changed


async def stale_claims(session: AsyncSession, *, claimed_before: datetime, limit: int = 100) -> list[ReviewTask]:
    rows = await session.scalars(select(ReviewTask).where(ReviewTask.status == "claimed",
                                                          ReviewTask.claimed_at < claimed_before).limit(limit))
    return list(rows)


async def latest_for_version(session: AsyncSession, version_id: uuid.UUID) -> ReviewTask | None:
    return await session.scalar(select(ReviewTask).where(ReviewTask.version_id == version_id)
                                .order_by(ReviewTask.created_at.desc()).limit(1))


async def oldest_created(session: AsyncSession, *, statuses: Sequence[str]) -> datetime | None:
    """When the oldest task in ``statuses`` entered the queue."""
    return await session.scalar(select(func.min(ReviewTask.created_at)).where(ReviewTask.status.in_(statuses)))
async def oldest_waiting(session: AsyncSession) -> datetime | None:
    """When the longest-waiting pending or claimed task was submitted."""
    return await session.scalar(select(func.min(ReviewTask.created_at))
                                .where(ReviewTask.status.in_(("pending", "claimed"))))
