"""Keep cached listing pages fresh: every change a reader could see evicts them."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus.context import current_bus
from mercato.bus.events import CloudEvent
from mercato.bus.registry import observe
from mercato.catalog import service as catalog
from mercato.catalog.cache_keys import cache_keys
from mercato.catalog.events import LISTING_TYPES
from mercato.ratings.events import RATING_TYPES
from mercato.releases.events import VERSION_TYPES

# Every event that changes what a listing page shows.
EVICTING = LISTING_TYPES + VERSION_TYPES + RATING_TYPES
# Changes shown on every listing of a publisher or a category.
EVICTING_MANY = ("publisher.updated", "category.changed")


# The subscriber keeps the name it had when this lived in the catalog: it is stored with its cursor.
@observe(*EVICTING, *EVICTING_MANY, name="catalog.evict_detail")
async def evict_detail(session: AsyncSession, events: list[CloudEvent]) -> None:
    """The transaction that made the change evicted its own process's copy after commit; this
    reaches the other processes (and a shared cache, again, harmlessly)."""
    runtime = current_bus().runtime
    if runtime is None:
        return
    evicted: set[str] = set()
    for event in events:
        data = event.json_data
        if event.type == "publisher.updated":
            evicted.update(str(i) for i in await catalog.evict_details_of(
                session, publisher_id=uuid.UUID(str(data["publisher_id"]))))
        elif event.type == "category.changed":
            evicted.update(str(i) for i in await catalog.evict_details_of(
                session, category_id=uuid.UUID(str(data["category_id"]))))
        elif data.get("listing_id"):
            evicted.add(str(data["listing_id"]))
    if evicted:
        await runtime.cache.delete(*cache_keys(*sorted(evicted)))
