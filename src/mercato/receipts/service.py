"""Receipts (PRODUCT M10): a document for every completed order and every succeeded payment,
as JSON and as a printable HTML page. Built from what was frozen at the time (the order's
prices and totals, the payment's amount), so a receipt never changes after the fact except
to show refunds."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.kit.errors import Conflict, NotFound, found_or_raise
from mercato.orders import service as orders
from mercato.receipts import repository

RECEIPTED_ORDERS = ("completed", "partially_refunded", "refunded")
RECEIPTED_PAYMENTS = ("succeeded", "partially_refunded", "refunded")



class ReceiptNotFound(NotFound):
    code, title = "receipt_not_found", "No such receipt"


class NoReceiptYet(Conflict):
    """409: receipts exist for completed orders and succeeded payments only."""

    code, title = "receipt_not_ready", "There is no receipt for this yet"


@dataclass
class ReceiptLine:
    description: str
    quantity: int
    unit_price: int
    discount: int
    total: int
    refunded: int = 0


@dataclass
class Receipt:
    number: str
    kind: str  # order | payment
    issued_at: datetime
    buyer_email: str
    currency: str
    lines: list[ReceiptLine] = field(default_factory=list)
    subtotal: int = 0
    discount: int = 0
    total: int = 0
    refunded: int = 0
    paid_with: str = "wallet"
    reference_id: uuid.UUID | None = None
    coupon: str | None = None
    shipping_address: dict[str, str] | None = None


def _owner_filter(actor: Principal, permission: Permission) -> uuid.UUID | None:
    """Admins read every receipt; everyone else only their own (others' do not exist for them)."""
    return None if actor.has_any(permission) else actor.user_id


async def for_order(session: AsyncSession, *, actor: Principal, order_id: uuid.UUID) -> Receipt:
    order = found_or_raise(await orders.find(session, order_id, buyer_id=_owner_filter(actor, Permission.order_read)),
                           ReceiptNotFound, f"There is no order {order_id}.")
    if order.status not in RECEIPTED_ORDERS or order.completed_at is None:
        raise NoReceiptYet(f"Order {order.id} is {order.status}; its receipt comes with completion.")
    buyer = await repository.buyer(session, order.user_id)
    return Receipt(number=f"R-{order.id.hex[:12].upper()}", kind="order", issued_at=order.completed_at,
                   buyer_email=buyer.email if buyer else "", currency=order.currency,
                   lines=[ReceiptLine(description=line.title
                                      + (" (physical copy)" if line.delivery == "physical" else ""),
                                      quantity=line.quantity, unit_price=line.unit_price, discount=line.discount,
                                      total=line.total, refunded=line.refunded_amount)
                          for line in await orders.lines(session, order.id)],
                   subtotal=order.subtotal, discount=order.discount, total=order.total, refunded=order.refunded_amount,
                   paid_with="wallet", reference_id=order.id, coupon=order.coupon_code,
                   shipping_address=order.shipping_address)


async def for_payment(session: AsyncSession, *, actor: Principal, payment_id: uuid.UUID) -> Receipt:
    owner_id = _owner_filter(actor, Permission.payment_read)
    payment = found_or_raise(await repository.payment(session, payment_id, owner_id=owner_id), ReceiptNotFound,
                             f"There is no payment {payment_id}.")
    if payment.status not in RECEIPTED_PAYMENTS or payment.succeeded_at is None:
        raise NoReceiptYet(f"Payment {payment.id} is {payment.status}; its receipt comes once it succeeds.")
    buyer = await repository.buyer(session, payment.user_id)
    description = "Wallet top-up" if payment.purpose == "topup" else "Payment for an order"
    return Receipt(number=f"P-{payment.id.hex[:12].upper()}", kind="payment", issued_at=payment.succeeded_at,
                   buyer_email=buyer.email if buyer else "", currency=payment.currency,
                   lines=[ReceiptLine(description=description, quantity=1, unit_price=payment.amount, discount=0,
                                      total=payment.amount, refunded=payment.refunded_amount)],
                   subtotal=payment.amount, total=payment.amount, refunded=payment.refunded_amount,
                   paid_with=payment.provider, reference_id=payment.order_id or payment.id)
