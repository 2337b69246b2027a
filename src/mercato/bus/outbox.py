"""The outbox writer: ``publish`` stores an event in the caller's transaction.

Nothing is sent here. The event exists exactly when the change that caused it commits;
the relay (bus issue) delivers committed rows to subscribers.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus.events import CloudEvent
from mercato.models import OutboxEvent


async def publish(session: AsyncSession, event: CloudEvent) -> None:
    session.add(OutboxEvent(id=event.id, type=event.type, source=event.source, subject=event.subject,
                            time=event.time, data=event.data))
    await session.flush()


async def backlog(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(OutboxEvent)) or 0)
