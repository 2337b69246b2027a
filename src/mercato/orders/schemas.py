"""Request and response models of orders (API.md "Money": amounts are integer minor units)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from mercato.kit.money import Money
from mercato.kit.schemas import ReadModel, WriteModel
from mercato.models import Order, OrderLine, Shipment

# ISO 3166-1 alpha-2, officially assigned codes.
COUNTRIES = frozenset("""
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO
FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE
JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO
MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW
PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM
TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
""".split())  # a block of codes reads better than 249 quoted strings

Delivery = Literal["digital", "physical"]
OrderStatus = Literal["created", "awaiting_payment", "paid", "awaiting_shipment", "shipped", "completed", "expired",
                      "canceled", "failed", "partially_refunded", "refunded"]
# States a ``?wait=`` returns on: terminal, or waiting for someone outside the saga.
SETTLED_STATES = frozenset({"completed", "failed", "expired", "canceled", "awaiting_payment", "awaiting_shipment",
                            "shipped", "partially_refunded", "refunded"})


class ShippingAddress(WriteModel):
    name: str = Field(min_length=1, max_length=200)
    line1: str = Field(min_length=1, max_length=200)
    line2: str | None = Field(default=None, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    region: str | None = Field(default=None, max_length=100)
    postal_code: str = Field(min_length=1, max_length=20)
    country: str = Field(min_length=2, max_length=2, description="ISO 3166-1 alpha-2 code, e.g. `DE`.")
    phone: str | None = Field(default=None, max_length=40)

    @field_validator("country")
    @classmethod
    def _iso_country(cls, value: str) -> str:
        code = value.upper()
        if code not in COUNTRIES:
            raise ValueError("not an ISO 3166-1 alpha-2 country code")
        return code

    @field_validator("name", "line1", "city", "postal_code")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class OrderItem(WriteModel):
    listing_id: uuid.UUID
    delivery: Delivery = "digital"
    quantity: int = Field(default=1, ge=1, le=1000, description="1 for digital items; physical up to the policy.")


class OrderCreate(WriteModel):
    items: list[OrderItem] = Field(min_length=1, max_length=100)
    coupon: str | None = Field(default=None, min_length=1, max_length=64)
    shipping_address: ShippingAddress | None = None


class Shipping(WriteModel):
    carrier: str = Field(min_length=1, max_length=64)
    tracking_number: str = Field(min_length=1, max_length=128)


def _money(amount: int, currency: str) -> Money:
    return Money(amount=amount, currency=currency)


class OrderLineRead(BaseModel):
    id: uuid.UUID
    position: int
    listing_id: uuid.UUID
    publisher_id: uuid.UUID
    title: str
    delivery: Delivery
    quantity: int
    unit_price: Money
    discount: Money
    total: Money
    refunded_quantity: int
    refunded_amount: Money

    @classmethod
    def from_model(cls, line: OrderLine, currency: str) -> OrderLineRead:
        return cls(id=line.id, position=line.position, listing_id=line.listing_id, publisher_id=line.publisher_id,
                   title=line.title, delivery=line.delivery, quantity=line.quantity,  # type: ignore[arg-type]
                   unit_price=_money(line.unit_price, currency), discount=_money(line.discount, currency),
                   total=_money(line.total, currency), refunded_quantity=line.refunded_quantity,
                   refunded_amount=_money(line.refunded_amount, currency))


class ShipmentRead(ReadModel):
    id: uuid.UUID
    publisher_id: uuid.UUID
    status: Literal["pending", "awaiting", "shipped", "delivered", "canceled"]
    carrier: str | None
    tracking_number: str | None
    shipped_at: datetime | None
    delivered_at: datetime | None


class OrderRead(BaseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    status: OrderStatus
    currency: str
    subtotal: Money
    discount: Money
    total: Money
    refunded_amount: Money
    coupon_code: str | None
    shipping_address: dict[str, Any] | None
    refund_window_days: int
    lines: list[OrderLineRead]
    shipments: list[ShipmentRead]
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    paid_at: datetime | None
    completed_at: datetime | None
    closed_at: datetime | None
    failure_reason: str | None

    @classmethod
    def from_model(cls, order: Order, lines: list[OrderLine], shipments: list[Shipment]) -> OrderRead:
        c = order.currency
        return cls(id=order.id, user_id=order.user_id, status=order.status,  # type: ignore[arg-type]
                   currency=c, subtotal=_money(order.subtotal, c), discount=_money(order.discount, c),
                   total=_money(order.total, c), refunded_amount=_money(order.refunded_amount, c),
                   coupon_code=order.coupon_code, shipping_address=order.shipping_address,
                   refund_window_days=order.refund_window_days,
                   lines=[OrderLineRead.from_model(line, c) for line in lines],
                   shipments=[ShipmentRead.model_validate(s) for s in shipments], created_at=order.created_at,
                   updated_at=order.updated_at, expires_at=order.expires_at, paid_at=order.paid_at,
                   completed_at=order.completed_at, closed_at=order.closed_at, failure_reason=order.failure_reason)


class PublisherOrderRead(BaseModel):
    """What a publisher sees of an order: its own lines and shipment, and where to ship."""

    id: uuid.UUID
    status: OrderStatus
    currency: str
    lines: list[OrderLineRead]
    shipment: ShipmentRead | None
    shipping_address: dict[str, Any] | None
    created_at: datetime
    paid_at: datetime | None


class PaymentSummary(BaseModel):
    id: uuid.UUID
    status: str
    amount: Money
    checkout_url: str | None
    expires_at: datetime | None


class OrderPaymentRead(BaseModel):
    """The order after ``POST /orders/{id}/pay``; ``payment`` is null when the wallet
    covered the total (the order was paid from it at once)."""

    order: OrderRead
    payment: PaymentSummary | None
