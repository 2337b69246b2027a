"""Push every event that concerns a user to that user's live streams."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus.context import current_bus
from mercato.bus.events import CloudEvent
from mercato.bus.registry import ALL_EVENTS, subscribe
from mercato.live.hub import LiveMessage


@subscribe(ALL_EVENTS, name="live.push")
async def push(session: AsyncSession, event: CloudEvent) -> None:
    user = event.data.get("user_id")
    hub = current_bus().live
    if not user or hub is None or event.sequence is None:
        return
    try:
        user_id = uuid.UUID(str(user))
    except ValueError:
        return
    # Sent before this delivery commits: at worst a client sees a message twice (it
    # dedupes by id), never misses one it could not recover with Last-Event-ID.
    await hub.publish(user_id, LiveMessage(sequence=event.sequence, type=event.type, payload=event.to_json()))
