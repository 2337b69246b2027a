"""Keep every process's view of the store policies fresh."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus.events import CloudEvent
from mercato.bus.registry import observe
from mercato.policies import service


@observe(service.EVENT_TYPE, name="policies.evict_cache")
async def evict_cache(session: AsyncSession, events: list[CloudEvent]) -> None:
    """The change's own process evicted its cache after the commit; this reaches the process
    that delivers the event (a worker, where sagas read the policies) at once. Every other
    process's cached copy expires within ``service.CACHE_SECONDS``."""
    service.evict_cache()
