"""Keep cached listing pages fresh: every change a reader could see evicts them."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus.context import current_bus
from mercato.bus.events import EVENT_TYPES, CloudEvent
from mercato.bus.registry import subscribe
from mercato.catalog.repository import DETAIL_CACHE_PREFIX

# Every event that changes what a listing page shows.
EVICTING = tuple(t for t in EVENT_TYPES if t.startswith(("listing.", "version.", "rating."))
                 and t != "version.downloaded")


@subscribe(*EVICTING, name="catalog.evict_detail")
async def evict_detail(session: AsyncSession, event: CloudEvent) -> None:
    """The request that made the change evicted its own process's copy after commit; this
    reaches the other processes (and a shared cache, again, harmlessly)."""
    runtime = current_bus().runtime
    listing_id = event.data.get("listing_id")
    if runtime is not None and listing_id:
        await runtime.cache.delete(DETAIL_CACHE_PREFIX + str(listing_id))
