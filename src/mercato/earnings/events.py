"""The events the earnings module emits (their ``data``; see ``mercato.bus.events``)."""

from __future__ import annotations

import uuid

from mercato.bus.events import EventData, event_type


class PayoutEvent(EventData):
    payout_id: uuid.UUID
    publisher_id: uuid.UUID
    amount: int
    currency: str


@event_type("payout.requested", source="earnings")
class PayoutRequested(PayoutEvent):
    """A publisher member asked for a payout of available earnings."""
    requested_by: uuid.UUID


@event_type("payout.approved", source="earnings")
class PayoutApproved(PayoutEvent):
    """An admin approved the payout."""
    decided_by: uuid.UUID


@event_type("payout.rejected", source="earnings")
class PayoutRejected(PayoutEvent):
    """An admin rejected the payout: the amount is available again."""
    decided_by: uuid.UUID
    reason: str
