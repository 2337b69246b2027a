"""The store's health at a glance (the admin console's first page): orders and payments
today, the review queue, what the bus owes and the sweeps' last runs. The figures come from
the same queries as the ``/metrics`` gauges (``bus.admin.backlog``, the review queue count)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus import admin as bus_admin
from mercato.bus.registry import Registry
from mercato.kit.clock import utcnow
from mercato.moderation import service as review
from mercato.orders import service as orders
from mercato.payments import service as payments


@dataclass(frozen=True)
class Health:
    since: datetime
    orders: dict[str, int]
    payments: dict[str, int]
    review_queue: int
    review_oldest_seconds: int | None
    backlog: bus_admin.Backlog
    sweeps: list[Any]

    @property
    def orders_total(self) -> int:
        return sum(self.orders.values())

    @property
    def payments_total(self) -> int:
        return sum(self.payments.values())


async def figures(session: AsyncSession, registry: Registry) -> Health:
    now = utcnow()
    since = datetime.combine(now.date(), time.min, tzinfo=UTC)
    oldest = await review.oldest_waiting(session)
    return Health(since=since, orders=await orders.counts_since(session, since),
                  payments=await payments.counts_since(session, since),
                  review_queue=await review.pending_count(session),
                  review_oldest_seconds=int((now - oldest).total_seconds()) if oldest else None,
                  backlog=await bus_admin.backlog(session, registry), sweeps=await bus_admin.sweeps(session))
