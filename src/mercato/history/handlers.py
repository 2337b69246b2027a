"""History is recorded from the events (one subscriber for every mapped type) and purged
after the retention period (``history_retention_days``) by a sweep."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus.context import HandlerContext
from mercato.bus.events import CloudEvent
from mercato.bus.registry import observe
from mercato.bus.scheduler import sweep
from mercato.history import service
from mercato.kit.logging import log

PURGE_BATCH = 1000


@observe(*service.recorded_types(), name="history.record", each=True)
async def record(session: AsyncSession, event: CloudEvent) -> None:
    await service.record(session, event)


@sweep("history.purge", every=3600.0)
async def purge_history(bus: HandlerContext) -> None:
    """Entries past the retention period go, a batch per transaction."""
    total = 0
    while True:
        async with bus.db.transaction() as session:
            purged = await service.purge(session, retention_days=bus.settings.history_retention_days,
                                         limit=PURGE_BATCH)
        total += purged
        if purged < PURGE_BATCH:
            break
    if total:
        log.info("history purged", count=total)
