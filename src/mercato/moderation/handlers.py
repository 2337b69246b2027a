"""Review sweeps: stale claims return to the queue; the queue length is a gauge (O3)."""

from __future__ import annotations

from mercato.bus.scheduler import sweep
from mercato.moderation import service
from mercato.moderation.service import REVIEW_QUEUE


@sweep("review.release_stale_claims", every=60.0)
async def release_stale_claims(bus) -> None:  # type: ignore[no-untyped-def]
    async with bus.db.transaction() as session:
        await service.release_stale(session, timeout_seconds=bus.settings.review_claim_timeout_seconds)
    async with bus.db.read_session() as session:
        REVIEW_QUEUE.set(await service.pending_count(session))
