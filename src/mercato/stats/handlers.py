"""Revenue in the publisher dashboard (P6): what buyers paid for a listing, per day.

A sale counts on the day its order completed (``order.completed``: each line's total, after
a coupon's discount), a refund takes its amount away on the day it was paid back
(``refund.completed``), so a day's revenue is net of that day's refunds (and may be
negative). Orders that never completed (failed, canceled, expired) took no money and count
nothing. The publisher's share after the commission is in its earnings
(``GET /publishers/{slug}/earnings``), not here.

The bus runs each subscriber once per event (``processed_events``), so a redelivered event
counts nothing twice; the day is the event's time (UTC), not the time of delivery.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, date

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus.events import CloudEvent
from mercato.bus.registry import observe
from mercato.catalog import service as catalog
from mercato.orders import service as orders
from mercato.orders.events import OrderCompleted
from mercato.refunds import service as refunds
from mercato.refunds.events import RefundCompleted


def _day(event: CloudEvent) -> date:
    at = event.time
    return (at.astimezone(UTC) if at.tzinfo else at).date()


async def _book(session: AsyncSession, day: date, amounts: dict[uuid.UUID, int]) -> None:
    for listing_id in sorted(amounts):  # one order of row locks for every writer
        if amounts[listing_id]:
            await catalog.add_to_day(session, listing_id, day, revenue=amounts[listing_id])


@observe(OrderCompleted, name="stats.count_revenue")
async def count_revenue(session: AsyncSession, events: list[CloudEvent[OrderCompleted]]) -> None:
    by_day: dict[date, dict[uuid.UUID, int]] = defaultdict(lambda: defaultdict(int))
    for event in events:
        for line in event.data.lines:
            by_day[_day(event)][line.listing_id] += line.total
    for day in sorted(by_day):
        await _book(session, day, by_day[day])


@observe(RefundCompleted, name="stats.count_refunds", each=True)
async def count_refunds(session: AsyncSession, event: CloudEvent[RefundCompleted]) -> None:
    refund_id, order_id = event.data.refund_id, event.data.order_id
    listing_of = {line.id: line.listing_id for line in await orders.lines(session, order_id)}
    amounts: dict[uuid.UUID, int] = defaultdict(int)
    for refund_line in await refunds.lines_of(session, refund_id):
        amounts[listing_of[refund_line.order_line_id]] -= refund_line.amount
    await _book(session, _day(event), amounts)
