"""The catalog change feed is fed by events: every event that can change what a listing's
public view shows re-records that listing (an unchanged view records nothing). Sweeps purge
old tombstones and reconcile the feed with the catalog (listings published before the feed
existed, changes no event announces such as stock)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus.context import current_bus
from mercato.bus.events import CloudEvent
from mercato.bus.registry import observe
from mercato.bus.scheduler import sweep
from mercato.catalog.events import LISTING_TYPES
from mercato.kit.logging import log
from mercato.ratings.events import RATING_TYPES
from mercato.sync import catalog_feed

# Every event that changes a listing's public view (the catalog's own cache uses the same test).
LISTING_EVENTS = LISTING_TYPES + RATING_TYPES + ("version.approved", "version.yanked")
RECONCILE_BATCH = 200
_pending: set[asyncio.Task[None]] = set()


async def _evict_head(session: AsyncSession) -> None:
    """Unchanged polls are answered from a cached head position: drop it now and once more
    right after the commit (a poll in between may have cached the old head again)."""
    bus = current_bus()
    cache = bus.runtime.cache if getattr(bus, "runtime", None) is not None else None
    if cache is None:
        return
    await cache.delete(catalog_feed.HEAD_CACHE_KEY)

    def evict(_session: Any) -> None:
        task = asyncio.get_running_loop().create_task(cache.delete(catalog_feed.HEAD_CACHE_KEY))
        _pending.add(task)
        task.add_done_callback(_pending.discard)

    sync_session = session.sync_session
    if not sa_event.contains(sync_session, "after_commit", evict):
        sa_event.listen(sync_session, "after_commit", evict, once=True)


def _ids(events: list[CloudEvent], key: str) -> list[uuid.UUID]:
    """The distinct ids under ``key`` in the batch, in order of first appearance (a listing
    changed ten times in a batch is recorded once, as it is now)."""
    return list(dict.fromkeys(uuid.UUID(str(e.json_data[key])) for e in events if e.json_data.get(key)))


@observe(*LISTING_EVENTS, name="sync.record_listing")
async def record_listing(session: AsyncSession, events: list[CloudEvent]) -> None:
    changed = False
    for listing_id in _ids(events, "listing_id"):
        changed = await catalog_feed.record_listing(session, listing_id) or changed
    if changed:
        await _evict_head(session)


@observe("publisher.updated", name="sync.record_publisher")
async def record_publisher(session: AsyncSession, events: list[CloudEvent]) -> None:
    changed = False
    for publisher_id in _ids(events, "publisher_id"):
        changed = await catalog_feed.record_publisher(session, publisher_id) or changed
    if changed:
        await _evict_head(session)


@sweep("sync.catalog.purge", every=3600.0)
async def purge_tombstones(bus) -> None:  # type: ignore[no-untyped-def]
    async with bus.db.transaction() as session:
        horizon = await catalog_feed.purge(session, retention_days=bus.settings.sync_tombstone_retention_days)
    if horizon:
        log.info("sync: tombstones purged", horizon=horizon)


@sweep("sync.catalog.reconcile", every=3600.0)
async def reconcile(bus) -> None:  # type: ignore[no-untyped-def]
    """Published listings first (fills and refreshes), then the feed's live rows (tombstones
    for listings no longer public), a batch per transaction."""
    changed = 0
    for feed in (False, True):
        after: uuid.UUID | None = None
        while True:
            async with bus.db.transaction() as session:
                count, after = await catalog_feed.reconcile_batch(session, after=after, limit=RECONCILE_BATCH,
                                                                  feed=feed)
            changed += count
            if after is None:
                break
    if changed:
        cache = getattr(getattr(bus, "runtime", None) or bus, "cache", None)  # the bus's runtime, or a runtime
        if cache is not None:
            await cache.delete(catalog_feed.HEAD_CACHE_KEY)
        log.info("sync: catalog feed reconciled", changed=changed)
