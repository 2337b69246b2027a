"""The JSON form of a receipt."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from mercato.kit.money import Money
from mercato.kit.schemas import ReadModel
from mercato.receipts.service import Receipt


class ReceiptLineRead(ReadModel):
    description: str
    quantity: int
    unit_price: Money
    discount: Money
    total: Money
    refunded: Money


class ReceiptRead(ReadModel):
    number: str
    kind: Literal["order", "payment"]
    issued_at: datetime
    buyer_email: str
    reference_id: uuid.UUID | None
    lines: list[ReceiptLineRead]
    subtotal: Money
    discount: Money
    total: Money
    refunded: Money
    paid_with: str
    coupon: str | None
    shipping_address: dict[str, str] | None

    @classmethod
    def of(cls, receipt: Receipt) -> ReceiptRead:
        def money(amount: int) -> Money:
            return Money(amount=amount, currency=receipt.currency)

        return cls(number=receipt.number, kind=receipt.kind, issued_at=receipt.issued_at,  # type: ignore[arg-type]
                   buyer_email=receipt.buyer_email, reference_id=receipt.reference_id,
                   lines=[ReceiptLineRead(description=line.description, quantity=line.quantity,
                                          unit_price=money(line.unit_price), discount=money(line.discount),
                                          total=money(line.total), refunded=money(line.refunded))
                          for line in receipt.lines],
                   subtotal=money(receipt.subtotal), discount=money(receipt.discount), total=money(receipt.total),
                   refunded=money(receipt.refunded), paid_with=receipt.paid_with, coupon=receipt.coupon,
                   shipping_address=receipt.shipping_address)
