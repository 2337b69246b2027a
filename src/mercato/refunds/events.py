"""The events the refunds module emits (their ``data``; see ``mercato.bus.events``)."""

from __future__ import annotations

import uuid

from mercato.bus.events import EventData, event_type


class RefundEvent(EventData):
    refund_id: uuid.UUID
    order_id: uuid.UUID
    user_id: uuid.UUID
    amount: int
    currency: str
    status: str
    automatic: bool


@event_type("refund.requested", source="refunds")
class RefundRequested(RefundEvent):
    """A buyer asked for a refund (``automatic``: approved by the policy at once)."""


@event_type("refund.approved", source="refunds")
class RefundApproved(RefundEvent):
    """The refund was approved: the buyer is credited, the entitlement revoked, the sale reversed."""


@event_type("refund.rejected", source="refunds")
class RefundRejected(RefundEvent):
    """The publisher or an admin rejected the refund."""


@event_type("refund.completed", source="refunds")
class RefundCompleted(RefundEvent):
    """The money is back in the buyer's wallet."""
