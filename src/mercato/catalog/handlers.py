"""Keep cached listing pages fresh: every change a reader could see evicts them."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus.context import current_bus
from mercato.bus.events import CloudEvent
from mercato.bus.registry import observe
from mercato.catalog.events import LISTING_TYPES
from mercato.catalog.repository import DETAIL_CACHE_PREFIX
from mercato.publishing.events import VERSION_TYPES
from mercato.ratings.events import RATING_TYPES

# Every event that changes what a listing page shows.
EVICTING = LISTING_TYPES + VERSION_TYPES + RATING_TYPES


@observe(*EVICTING, name="catalog.evict_detail")
async def evict_detail(session: AsyncSession, events: list[CloudEvent]) -> None:
    """The request that made the change evicted its own process's copy after commit; this
    reaches the other processes (and a shared cache, again, harmlessly)."""
    runtime = current_bus().runtime
    if runtime is None:
        return
    for listing_id in sorted({str(e.json_data["listing_id"]) for e in events if e.json_data.get("listing_id")}):
        await runtime.cache.delete(DETAIL_CACHE_PREFIX + listing_id)
