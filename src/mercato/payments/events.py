"""The events the payments module emits (their ``data``; see ``mercato.bus.events``)."""

from __future__ import annotations

import uuid

from mercato.bus.events import EventData, event_type


class PaymentEvent(EventData):
    payment_id: uuid.UUID
    user_id: uuid.UUID
    provider: str
    purpose: str
    order_id: uuid.UUID | None
    amount: int
    currency: str
    status: str


@event_type("payment.created", source="payments")
class PaymentCreated(PaymentEvent):
    """A provider payment started (a top-up, or an order's shortfall)."""


@event_type("payment.succeeded", source="payments")
class PaymentSucceeded(PaymentEvent):
    """The provider confirmed the payment: the wallet is credited."""


@event_type("payment.failed", source="payments")
class PaymentFailed(PaymentEvent):
    """The provider declined the payment."""


@event_type("payment.canceled", source="payments")
class PaymentCanceled(PaymentEvent):
    """The payer canceled the payment."""


@event_type("payment.expired", source="payments")
class PaymentExpired(PaymentEvent):
    """The payment was not completed in time."""


@event_type("payment.refunded", source="payments")
class PaymentRefunded(PaymentEvent):
    """Money went back through the provider (late, excess): ``refund_amount`` now, ``refunded_amount`` in all."""
    refund_amount: int
    refunded_amount: int
    reason: str
