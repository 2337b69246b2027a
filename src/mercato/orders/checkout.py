"""Checkout (PRODUCT M3, M9): creating an order. In the request that creates it, an order
is checked, priced, discounted by its coupon, written and its physical stock reserved, all
or nothing; then it travels the saga by events (``orders.saga``).

:func:`create` reads as its steps; each step is a function below it, in the same order.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.principal import Principal
from mercato.audit.actions import AuditAction
from mercato.audit.service import record as audit
from mercato.catalog import service as catalog
from mercato.catalog.errors import ListingNotFound
from mercato.coupons import service as coupons
from mercato.kit.clock import utcnow
from mercato.kit.failpoints import failpoint
from mercato.library import service as library
from mercato.models import Listing, Order, OrderLine, Shipment
from mercato.orders import grant, repository
from mercato.orders.errors import (
    AlreadyOwned,
    LicenceKeysExhausted,
    ListingNotAvailable,
    OrderInvalid,
    OrderTransitionRefused,
    OutOfStock,
    OwnListing,
    ShippingAddressRequired,
)
from mercato.orders.schemas import OrderCreate, OrderItem
from mercato.orders.transitions import line_data, mark_paid, publish_order_event, reached
from mercato.policies import service as policies
from mercato.policies.schemas import Policies
from mercato.publishers import service as publishers


@dataclass
class PricedLine:
    """One item of the order, checked and priced (``discount``: its share of the coupon)."""

    position: int
    listing_id: uuid.UUID
    publisher_id: uuid.UUID
    title: str
    delivery: str
    quantity: int
    unit_price: int
    discount: int = 0

    @property
    def subtotal(self) -> int:
        return self.unit_price * self.quantity


async def create(session: AsyncSession, *, actor: Principal, idempotency_key: str, body: OrderCreate,
                 currency: str) -> Order:
    """Price and check the order, reserve its stock, redeem its coupon and write it with
    ``order.created``, all in the caller's transaction. The same key again gives the same
    order (INV-4). A free order is settled at once: entitled and completed (digital), or
    waiting for shipment (physical)."""
    existing = await repository.by_key(session, actor.user_id, idempotency_key)
    if existing is not None:
        return existing
    rules = await policies.current(session)
    _check_size(body, rules)
    priced = await _price_items(session, actor, body, rules, currency)
    _check_shipping_address(body, priced)
    coupon = await _apply_coupon(session, actor, body.coupon, priced)
    order = _order_row(actor, idempotency_key, body, currency, rules, priced, coupon, now=utcnow())
    lines = _line_rows(order, priced)
    await _write(session, order, lines, _shipment_rows(order, priced))
    await _reserve_stock(session, priced)
    if coupon is not None:
        await coupons.redeem(session, coupon_id=coupon.coupon_id, user_id=actor.user_id, order_id=order.id)
    await _announce(session, actor, order, lines)
    await failpoint("saga.after_order_created")  # written, not committed (tests/orders/test_saga_faults.py)
    if order.total == 0:
        await _settle_free(session, order, lines)
    return order


# --- checking and pricing -------------------------------------------------------------------------

def _field_error(index: int, field: str, message: str) -> list[dict[str, Any]]:
    return [{"loc": ["body", "items", index, field], "msg": message, "type": "value_error"}]


def _check_size(body: OrderCreate, rules: Policies) -> None:
    if len(body.items) > rules.max_order_lines:
        raise OrderInvalid(f"An order has at most {rules.max_order_lines} lines.", errors=[
            {"loc": ["body", "items"], "msg": f"at most {rules.max_order_lines} lines", "type": "value_error"}])


async def _price_items(session: AsyncSession, actor: Principal, body: OrderCreate, rules: Policies,
                       currency: str) -> list[PricedLine]:
    """Each item checked and priced, in order; the first item refused refuses the order."""
    member_of = set(await publishers.publisher_ids_of(session, actor.user_id))
    seen: set[tuple[uuid.UUID, str]] = set()
    priced: list[PricedLine] = []
    for index, item in enumerate(body.items):
        if (item.listing_id, item.delivery) in seen:
            raise OrderInvalid("Each listing appears once per delivery; raise the quantity instead.",
                               errors=_field_error(index, "listing_id", "duplicate item"))
        seen.add((item.listing_id, item.delivery))
        listing = await _on_sale(session, index, item)
        price = _offer_price(index, item, listing, currency)
        _check_quantity(index, item, rules)
        await _check_buyer(session, actor, item, listing, member_of)
        priced.append(PricedLine(index, listing.id, listing.publisher_id, listing.name, item.delivery, item.quantity,
                                 price))
    return priced


async def _on_sale(session: AsyncSession, index: int, item: OrderItem) -> Listing:
    try:
        listing = await catalog.get_by_id(session, item.listing_id)
    except ListingNotFound:
        listing = None
    if listing is None or listing.status != "published":
        raise ListingNotAvailable(f"Listing {item.listing_id} is not on sale.",
                                  errors=_field_error(index, "listing_id", "not on sale"))
    return listing


def _offer_price(index: int, item: OrderItem, listing: Listing, currency: str) -> int:
    """The unit price of the listing's offer for the item's delivery, in the store currency."""
    price = listing.digital_price if item.delivery == "digital" else listing.physical_price
    if price is None or listing.currency != currency:
        raise ListingNotAvailable(f"{listing.name} is not sold as a {item.delivery} item.",
                                  errors=_field_error(index, "delivery", f"no {item.delivery} offer"))
    return price


def _check_quantity(index: int, item: OrderItem, rules: Policies) -> None:
    if item.delivery == "digital" and item.quantity != 1:
        raise OrderInvalid("A digital item is bought once (quantity 1).",
                           errors=_field_error(index, "quantity", "must be 1 for digital items"))
    if item.quantity > rules.max_line_quantity:
        raise OrderInvalid(f"At most {rules.max_line_quantity} of one item per order.",
                           errors=_field_error(index, "quantity", f"at most {rules.max_line_quantity}"))


async def _check_buyer(session: AsyncSession, actor: Principal, item: OrderItem, listing: Listing,
                       member_of: set[uuid.UUID]) -> None:
    """Nobody buys their own publisher's listing, nor a digital item they own already."""
    if listing.publisher_id in member_of:
        raise OwnListing(f"{listing.name} is your publisher's own listing.")
    if item.delivery == "digital" and await library.is_entitled(session, user_id=actor.user_id,
                                                                 listing_id=listing.id):
        raise AlreadyOwned(f"You already own {listing.name}; it is in your library.")


def _check_shipping_address(body: OrderCreate, priced: list[PricedLine]) -> None:
    """An address exactly when something ships."""
    physical = any(line.delivery == "physical" for line in priced)
    if physical and body.shipping_address is None:
        raise ShippingAddressRequired("Give a shipping_address for the physical items.", errors=[
            {"loc": ["body", "shipping_address"], "msg": "required for physical items", "type": "value_error"}])
    if not physical and body.shipping_address is not None:
        raise OrderInvalid("Only orders with physical items take a shipping_address.", errors=[
            {"loc": ["body", "shipping_address"], "msg": "only for physical items", "type": "value_error"}])


async def _apply_coupon(session: AsyncSession, actor: Principal, code: str | None,
                        priced: list[PricedLine]) -> coupons.CouponQuote | None:
    """The coupon's quote, its discount shared out over the lines (never more than a line's
    subtotal); None without a coupon. Nothing is redeemed yet."""
    if code is None:
        return None
    quote = await coupons.quote(session, code=code, user_id=actor.user_id, lines=[
        coupons.QuoteLine(listing_id=line.listing_id, publisher_id=line.publisher_id, total=line.subtotal)
        for line in priced])
    for line, discount in zip(priced, quote.line_discounts, strict=True):
        line.discount = max(0, min(int(discount), line.subtotal))
    return quote


# --- writing ------------------------------------------------------------------------------------

def _order_row(actor: Principal, idempotency_key: str, body: OrderCreate, currency: str, rules: Policies,
               priced: list[PricedLine], coupon: coupons.CouponQuote | None, *, now: datetime) -> Order:
    """The order with its prices and the policy's terms frozen at checkout."""
    subtotal = sum(line.subtotal for line in priced)
    discount = sum(line.discount for line in priced)
    return Order(id=uuid.uuid4(), user_id=actor.user_id, idempotency_key=idempotency_key, status="created",
                 currency=currency, subtotal=subtotal, discount=discount, total=subtotal - discount,
                 refunded_amount=0, coupon_id=coupon.coupon_id if coupon else None,
                 coupon_code=coupon.code if coupon else None,
                 shipping_address=body.shipping_address.model_dump() if body.shipping_address else None,
                 commission_bps=rules.commission_bps, refund_window_days=rules.refund_window_days,
                 expires_at=now + timedelta(seconds=rules.order_timeout_seconds), created_at=now, updated_at=now)


def _line_rows(order: Order, priced: list[PricedLine]) -> list[OrderLine]:
    return [OrderLine(id=uuid.uuid4(), order_id=order.id, position=line.position, listing_id=line.listing_id,
                      publisher_id=line.publisher_id, title=line.title[:100], delivery=line.delivery,
                      quantity=line.quantity, unit_price=line.unit_price, discount=line.discount,
                      total=line.subtotal - line.discount, refunded_quantity=0, refunded_amount=0)
            for line in priced]


def _shipment_rows(order: Order, priced: list[PricedLine]) -> list[Shipment]:
    """One pending shipment per publisher with physical lines, in the order they appear."""
    shipping = dict.fromkeys(line.publisher_id for line in priced if line.delivery == "physical")
    return [Shipment(id=uuid.uuid4(), order_id=order.id, publisher_id=publisher_id, status="pending",
                     created_at=order.created_at, updated_at=order.created_at)
            for publisher_id in shipping]


async def _write(session: AsyncSession, order: Order, lines: list[OrderLine], shipments: list[Shipment]) -> None:
    if not await repository.add(session, order, lines, shipments):
        # The same key won by a concurrent request that committed first: that order is the answer.
        raise OrderTransitionRefused("An order with this Idempotency-Key is being created; retry to get it.")


async def _reserve_stock(session: AsyncSession, priced: list[PricedLine]) -> None:
    """Take the physical lines' stock, or refuse the order (the caller's rollback undoes the
    inserts). Stock is reserved after the inserts, so the hot stock rows stay locked for as
    short a time as possible (a flash sale queues on them: PERF-5); in listing order, so
    concurrent multi-item orders never wait on each other in a cycle."""
    wanted: dict[uuid.UUID, int] = defaultdict(int)
    for line in priced:
        if line.delivery == "physical":
            wanted[line.listing_id] += line.quantity
    for listing_id in sorted(wanted):
        if not await catalog.reserve_stock(session, listing_id, wanted[listing_id]):
            title = next(line.title for line in priced if line.listing_id == listing_id)
            raise OutOfStock(f"Fewer than {wanted[listing_id]} of {title} are left.")


async def _announce(session: AsyncSession, actor: Principal, order: Order, lines: list[OrderLine]) -> None:
    """``order.created`` (the wallet debits the total next) and the buyer's audit entry."""
    await publish_order_event(session, order, "order.created", lines=[line_data(line) for line in lines])
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.order_create,
                resource_type="order", resource_id=order.id,
                after={"status": order.status, "total": order.total, "currency": order.currency,
                       "lines": [{"listing_id": line.listing_id, "quantity": line.quantity, "total": line.total}
                                 for line in lines]})


async def _settle_free(session: AsyncSession, order: Order, lines: list[OrderLine]) -> None:
    """A free order takes no money: it is paid at once, and a digital one is entitled and
    completed in the same transaction (the "get" path); nothing of it may fail later."""
    now = utcnow()
    if any(line.delivery == "physical" for line in lines):
        await mark_paid(session, order, lines, at=now)
        return
    refused = await grant.grant_order(session, order_id=order.id, user_id=order.user_id, lines=[
        grant.OrderLineToGrant(line.id, line.listing_id, line.delivery) for line in lines])
    if refused is not None:
        error = AlreadyOwned if refused.reason == "already_owned" else LicenceKeysExhausted
        raise error(refused.detail)
    await repository.transition(session, order.id, from_=("created",), to="completed", at=now, paid_at=now,
                                completed_at=now)
    await reached(session, order, "completed", before="created")
    await publish_order_event(session, order, "order.completed", lines=[line_data(line) for line in lines],
                              commission_bps=order.commission_bps)
