"""Push every event that concerns a user to that user's live streams."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus.context import current_bus
from mercato.bus.events import CloudEvent
from mercato.bus.registry import ALL_EVENTS, observe
from mercato.live.hub import LiveMessage


@observe(ALL_EVENTS, name="live.push")
async def push(session: AsyncSession, events: list[CloudEvent]) -> None:
    hub = current_bus().live
    if hub is None:
        return
    for event in events:
        user = event.json_data.get("user_id")
        if not user or event.sequence is None:
            continue
        try:
            user_id = uuid.UUID(str(user))
        except ValueError:
            continue
        # Sent before this batch commits: at worst a client sees a message twice (it
        # dedupes by id), never misses one it could not recover with Last-Event-ID.
        await hub.publish(user_id, LiveMessage(sequence=event.sequence, type=event.type, payload=event.to_json()))
