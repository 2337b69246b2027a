"""Gauges read from the database when /metrics is scraped.

Every process reports the same figures (they are the database's), fresh at each scrape: the
scheduled ``bus.gauges`` sweep runs in one process at a time (its lease), so a figure it set
in a process that has since lost the lease would be stale there. Alert on ``max`` across
instances. ``mercato_database_up`` is 0 when the database did not answer within
``CHECK_SECONDS``; the other gauges keep their last value then.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from prometheus_client import Gauge

from mercato.bus.registry import Registry
from mercato.bus.service import refresh_gauges as refresh_bus_gauges
from mercato.kit.clock import utcnow
from mercato.kit.db import Database
from mercato.kit.logging import log
from mercato.kit.metrics import REGISTRY
from mercato.moderation import service as review
from mercato.orders import service as orders

CHECK_SECONDS = 3.0

DATABASE_UP = Gauge("mercato_database_up", "1 when this process's database answered the last scrape's queries "
                    "within 3 s, else 0.", registry=REGISTRY)
REVIEW_OLDEST = Gauge("mercato_review_oldest_pending_seconds", "Age of the oldest review task waiting for a "
                      "decision (pending or claimed); 0 when the queue is empty.", registry=REGISTRY)
ORDERS_OVERDUE = Gauge("mercato_orders_saga_overdue_seconds", "How long the order saga's longest-waiting step "
                       "has been due: a paid order not yet fulfilled (since paid_at), an unpaid order past "
                       "expires_at not yet expired; 0 when nothing is owed.", registry=REGISTRY)


def _age(since: datetime | None, now: datetime) -> float:
    return max(0.0, (now - since).total_seconds()) if since is not None else 0.0


async def refresh(db: Database, registry: Registry | None) -> bool:
    """Read the figures; True when the database answered."""
    try:
        async with asyncio.timeout(CHECK_SECONDS):
            if registry is not None:
                await refresh_bus_gauges(db, registry)
            async with db.read_session() as session:
                queued = await review.pending_count(session)
                oldest = await review.oldest_pending_since(session)
                overdue = await orders.saga_overdue_since(session)
    except Exception as exc:  # report, never raise: a scrape must answer while the database is down
        log.warning("metrics: database unavailable", error=f"{type(exc).__name__}: {exc}")
        DATABASE_UP.set(0)
        return False
    now = utcnow()
    review.REVIEW_QUEUE.set(queued)
    REVIEW_OLDEST.set(_age(oldest, now))
    ORDERS_OVERDUE.set(_age(overdue, now))
    DATABASE_UP.set(1)
    return True
