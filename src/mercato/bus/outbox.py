"""The outbox writer: ``publish`` stores an event in the caller's transaction.

Nothing is sent here. The event exists exactly when the change that caused it commits;
the relay (``bus/relay.py``) fans committed rows out to subscribers. A relay in this
process is woken right after the commit, so delivery does not wait for its next poll.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus.events import CloudEvent
from mercato.kit.failpoints import failpoint
from mercato.models import OutboxEvent

# Relays running in this process; each is set after a commit that published events.
_wakeups: set[asyncio.Event] = set()


def register_wakeup(signal: asyncio.Event) -> None:
    _wakeups.add(signal)


def unregister_wakeup(signal: asyncio.Event) -> None:
    _wakeups.discard(signal)


def _wake(_session: Any) -> None:
    for signal in list(_wakeups):
        signal.set()


def _audience(data: dict[str, Any], key: str) -> uuid.UUID | None:
    value = data.get(key)
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


async def publish(session: AsyncSession, event: CloudEvent[Any]) -> None:
    """Store ``event`` in the caller's transaction; its payload is validated against its
    declaration first (an invalid payload is the producer's bug and raises)."""
    data = event.validated().json_data
    session.add(OutboxEvent(id=event.id, type=event.type, source=event.source, subject=event.subject,
                            time=event.time, data=data, user_id=_audience(data, "user_id"),
                            publisher_id=_audience(data, "publisher_id")))
    await session.flush()
    await failpoint("outbox.after_insert")
    sync_session = session.sync_session
    if not sa_event.contains(sync_session, "after_commit", _wake):
        sa_event.listen(sync_session, "after_commit", _wake, once=True)


async def backlog(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(OutboxEvent)
                                    .where(OutboxEvent.relayed_at.is_(None))) or 0)
