"""The events the orders module emits (their ``data``; see ``mercato.bus.events``)."""

from __future__ import annotations

import uuid
from typing import Literal

from mercato.bus.events import EventData, event_type


class OrderLineData(EventData):
    line_id: uuid.UUID
    listing_id: uuid.UUID
    publisher_id: uuid.UUID
    delivery: Literal["digital", "physical"]
    quantity: int
    total: int


class OrderEvent(EventData):
    order_id: uuid.UUID
    user_id: uuid.UUID
    status: str
    total: int
    currency: str


@event_type("order.created", source="orders")
class OrderCreated(OrderEvent):
    """A checkout: prices frozen, stock reserved; the wallet debits the total next."""
    lines: list[OrderLineData]


@event_type("order.awaiting_payment", source="orders")
class OrderAwaitingPayment(OrderEvent):
    """The wallet was short: the buyer pays ``shortfall`` through a provider."""
    shortfall: int


@event_type("order.paid", source="orders")
class OrderPaid(OrderEvent):
    """The total is in escrow. Digital orders are entitled next; with physical lines the order awaits shipment."""
    physical: bool
    lines: list[OrderLineData]


@event_type("order.shipped", source="orders")
class OrderShipped(OrderEvent):
    """A publisher shipped its part of the order."""
    publisher_id: uuid.UUID
    carrier: str
    tracking_number: str


@event_type("order.delivered", source="orders")
class OrderDelivered(OrderEvent):
    """Every shipment of the order was delivered: the buyer is entitled next."""
    lines: list[OrderLineData]


@event_type("order.completed", source="orders")
class OrderCompleted(OrderEvent):
    """The buyer owns everything: escrow settles to the publishers minus ``commission_bps``."""
    commission_bps: int
    lines: list[OrderLineData]


@event_type("order.expired", source="orders")
class OrderExpired(OrderEvent):
    """Not paid in time: stock returned, any money taken refunded."""
    reason: str


@event_type("order.canceled", source="orders")
class OrderCanceled(OrderEvent):
    """Canceled by the buyer (unpaid) or a publisher (before shipping): stock returned, money refunded."""
    reason: str
    by: Literal["buyer", "publisher", "admin"] | None = None


@event_type("order.failed", source="orders")
class OrderFailed(OrderEvent):
    """A later step failed (compensated: full refund)."""
    reason: str
