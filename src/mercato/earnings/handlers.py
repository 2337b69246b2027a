"""Earnings' reactions: a completed order pays its publishers (the settlement), and the
members of a publisher are told when an admin decided one of its payouts (in the inbox,
and by e-mail where the store sends mail)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus.events import CloudEvent
from mercato.bus.registry import observe, subscribe
from mercato.earnings.events import PayoutApproved, PayoutRejected
from mercato.kit.failpoints import failpoint
from mercato.kit.money import format_money
from mercato.notifications import service as notifications
from mercato.orders.events import OrderCompleted
from mercato.publishers import service as publishers
from mercato.publishers.errors import PublisherNotFound
from mercato.wallet import service as wallet


@subscribe(OrderCompleted, name="earnings.settle")
async def settle_order(session: AsyncSession, event: CloudEvent[OrderCompleted]) -> None:
    """At completion escrow pays each publisher its lines minus the commission frozen on the
    order, and the platform the commission (M7)."""
    order = event.data
    await wallet.settle_order(session, order_id=order.order_id,
                              splits=[wallet.Split(line.publisher_id, line.total) for line in order.lines],
                              commission_bps=order.commission_bps, currency=order.currency)
    await failpoint("saga.after_settlement")


@observe(PayoutApproved, PayoutRejected, name="earnings.notify_payout_decided", each=True)
async def notify_payout_decided(session: AsyncSession, event: CloudEvent[PayoutApproved | PayoutRejected]) -> None:
    payout = event.data
    try:
        publisher = await publishers.get_by_id(session, payout.publisher_id)
    except PublisherNotFound:
        return
    members = [uuid.UUID(user_id) for user_id, _email, _role in await publishers.members(session, publisher)]
    if not members:
        return
    amount = format_money(payout.amount, payout.currency)
    if isinstance(payout, PayoutApproved):
        title, body = f"Payout of {amount} approved", f"It is paid out to {publisher.name}'s payout account."
    else:
        title = f"Payout of {amount} rejected"
        body = f"Reason: {payout.reason}. The amount is back in your available earnings."
    await notifications.notify(session, event_id=event.id, user_ids=members, kind=event.type, title=title, body=body,
                               link=f"/console/publisher/{publisher.slug}/earnings",
                               data={key: value for key, value in event.json_data.items()
                                     if key in ("payout_id", "publisher_id", "amount", "currency", "reason")})
