"""Keep cached listing pages fresh: every change a reader could see evicts them."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus.context import current_bus
from mercato.bus.events import EVENT_TYPES, CloudEvent
from mercato.bus.registry import subscribe
from mercato.catalog import repository
from mercato.catalog.repository import DETAIL_CACHE_PREFIX

# Every event that changes what a listing page shows.
EVICTING = tuple(t for t in EVENT_TYPES if t.startswith(("listing.", "version.", "rating."))
                 and t != "version.downloaded")


# Changes shown on every listing of a publisher or a category.
EVICTING_MANY = ("publisher.updated", "category.changed")


@subscribe(*EVICTING, *EVICTING_MANY, name="catalog.evict_detail")
async def evict_detail(session: AsyncSession, event: CloudEvent) -> None:
    """The transaction that made the change evicted its own process's copy after commit; this
    reaches the other processes (and a shared cache, again, harmlessly)."""
    runtime = current_bus().runtime
    if runtime is None:
        return
    listing_id = event.data.get("listing_id")
    if event.type in EVICTING_MANY:
        scope = {"publisher_id": event.data.get("publisher_id")} if event.type == "publisher.updated" else \
            {"category_id": event.data.get("category_id")}
        ids = [] if None in scope.values() else await repository.evict_details_of(
            session, **{k: uuid.UUID(str(v)) for k, v in scope.items()})
        await runtime.cache.delete(*(DETAIL_CACHE_PREFIX + str(i) for i in ids))
    elif listing_id:
        await runtime.cache.delete(DETAIL_CACHE_PREFIX + str(listing_id))
