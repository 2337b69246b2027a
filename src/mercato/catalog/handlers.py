"""Keep cached listing pages fresh: every change a reader could see evicts them."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus.context import current_bus
from mercato.bus.events import EVENT_TYPES, CloudEvent
from mercato.bus.registry import observe
from mercato.catalog.repository import DETAIL_CACHE_PREFIX

# Every event that changes what a listing page shows.
EVICTING = tuple(t for t in EVENT_TYPES if t.startswith(("listing.", "version.", "rating."))
                 and t != "version.downloaded")


@observe(*EVICTING, name="catalog.evict_detail")
async def evict_detail(session: AsyncSession, events: list[CloudEvent]) -> None:
    """The request that made the change evicted its own process's copy after commit; this
    reaches the other processes (and a shared cache, again, harmlessly)."""
    runtime = current_bus().runtime
    if runtime is None:
        return
    for listing_id in sorted({str(e.data["listing_id"]) for e in events if e.data.get("listing_id")}):
        await runtime.cache.delete(DETAIL_CACHE_PREFIX + listing_id)
