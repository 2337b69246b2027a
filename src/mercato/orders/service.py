"""Orders and checkout (PRODUCT M3–M5, M9; DOMAIN.md "Order" and "Saga").

An order is priced, checked and its physical stock reserved in the request that creates
it, all or nothing; it then travels the saga by events (choreography, no orchestrator):

``order.created`` → the wallet debits the total into escrow → ``wallet.debited`` → here:
``paid`` (``order.paid``; orders with physical lines wait in ``awaiting_shipment``) →
the library entitles (``entitlement.granted``) → here: ``completed`` (``order.completed``),
which settles the money to the publishers. A refused debit leaves the order
``awaiting_payment`` until a provider payment for the shortfall arrives (or it expires);
a refused grant fails the order with a full refund.

Every reaction is a guarded transition (``UPDATE … WHERE status IN (…)``), so a repeated
or late event changes nothing twice; ledger postings are idempotent by reference. Stock
goes back, once, in the transition that closes an order that did not ship.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.permissions import Condition, Permission
from mercato.access.principal import Principal
from mercato.audit.actions import AuditAction
from mercato.audit.service import record as audit
from mercato.audit.service import record_system as audit_system
from mercato.bus.events import CloudEvent
from mercato.bus.outbox import publish
from mercato.catalog import service as catalog
from mercato.catalog.errors import ListingNotFound
from mercato.coupons import service as coupons
from mercato.kit.clock import utcnow
from mercato.kit.errors import Forbidden
from mercato.kit.failpoints import failpoint
from mercato.kit.metrics import ORDERS, count_on_commit
from mercato.ledger.errors import InsufficientFunds
from mercato.library import service as library
from mercato.models import Order, OrderLine, Shipment
from mercato.notifications import service as notifications
from mercato.orders import repository
from mercato.orders.errors import (
    AlreadyOwned,
    LicenceKeysExhausted,
    ListingNotAvailable,
    OrderInvalid,
    OrderNotFound,
    OrderTransitionRefused,
    OutOfStock,
    OwnListing,
    ShippingAddressRequired,
)
from mercato.orders.schemas import OrderCreate, OrderRead, PublisherOrderRead, ShipmentRead
from mercato.payments import service as payments
from mercato.policies import service as policies
from mercato.publishers import service as publishers
from mercato.wallet import service as wallet

UNPAID = ("created", "awaiting_payment")
# Where a paid order may fail (a later step refused): DOMAIN "paid | awaiting_shipment → failed".
FAILABLE = ("paid", "awaiting_shipment", "shipped")
COMPLETABLE = ("paid", "shipped")


# --- reading ------------------------------------------------------------------------------------

async def get_visible(session: AsyncSession, *, actor: Principal, order_id: uuid.UUID) -> Order:
    """The buyer's own order (``order:read`` own) or any (``any``); 404 otherwise."""
    condition = actor.condition_for(Permission.order_read)
    buyer = None if condition is Condition.any else actor.user_id
    order = await repository.visible(session, order_id, buyer_id=buyer)
    if order is None:
        raise OrderNotFound(f"There is no order {order_id}.")
    return order


async def present(session: AsyncSession, orders: list[Order]) -> list[OrderRead]:
    ids = [order.id for order in orders]
    lines = await repository.lines_of(session, ids)
    shipments = await repository.shipments_of(session, ids)
    return [OrderRead.from_model(order, lines[order.id], shipments[order.id]) for order in orders]


async def of_buyer(session: AsyncSession, *, actor: Principal, status: str | None,
                   after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[Order]:
    return await repository.of_user(session, actor.user_id, status=status, after=after, limit=limit)


async def saga_overdue_since(session: AsyncSession) -> datetime | None:
    """When the longest-waiting step the order saga owes became due (None: nothing owed)."""
    return await repository.oldest_overdue(session, now=utcnow())


async def status_of(session: AsyncSession, order_id: uuid.UUID) -> str | None:
    """The order's state, for other modules' reactions (the wallet skips orders that ended)."""
    return await repository.status_of(session, order_id)


async def of_publisher(session: AsyncSession, *, actor: Principal, slug: str, status: str | None,
                       after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[PublisherOrderRead]:
    """Orders with physical lines of the publisher: members (``order:fulfil`` own) or ``any``;
    only the publisher's lines and shipment are shown, with the address to ship to."""
    publisher = await publishers.get(session, slug)
    condition = actor.condition_for(Permission.order_fulfil, publisher.slug)
    if not (condition is Condition.any or (
            condition is Condition.own and await publishers.member_role(session, publisher.id, actor.user_id))):
        raise Forbidden(f"Only members of {publisher.slug!r} and admins see its orders.")
    rows = await repository.of_publisher(session, publisher.id, status=status, after=after, limit=limit)
    lines = await repository.lines_of(session, [order.id for order, _ in rows])
    out = []
    for order, shipment in rows:
        own = [line for line in lines[order.id] if line.publisher_id == publisher.id]
        # The address is shown once the order is paid: before that there is nothing to ship.
        address = order.shipping_address if order.paid_at is not None else None
        out.append(PublisherOrderRead(
            id=order.id, status=order.status, currency=order.currency,  # type: ignore[arg-type]
            lines=OrderRead.from_model(order, own, []).lines, shipment=ShipmentRead.model_validate(shipment),
            shipping_address=address, created_at=order.created_at, paid_at=order.paid_at))
    return out


# --- events -------------------------------------------------------------------------------------

def _line_data(line: OrderLine) -> dict[str, Any]:
    return {"line_id": str(line.id), "listing_id": str(line.listing_id), "publisher_id": str(line.publisher_id),
            "delivery": line.delivery, "quantity": line.quantity, "total": line.total}


def _data(order: Order, **extra: Any) -> dict[str, Any]:
    return {"order_id": str(order.id), "user_id": str(order.user_id), "status": order.status, "total": order.total,
            "currency": order.currency, **extra}


async def _publish(session: AsyncSession, order: Order, event_type: str, **extra: Any) -> CloudEvent:
    event = CloudEvent(type=event_type, subject=str(order.id), data=_data(order, **extra))
    await publish(session, event)
    return event


async def _lines(session: AsyncSession, order_id: uuid.UUID) -> list[OrderLine]:
    return (await repository.lines_of(session, [order_id]))[order_id]


# --- checkout (M3) ------------------------------------------------------------------------------

@dataclass
class _Priced:
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


def _field_error(index: int, field: str, message: str) -> list[dict[str, Any]]:
    return [{"loc": ["body", "items", index, field], "msg": message, "type": "value_error"}]


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
    if len(body.items) > rules.max_order_lines:
        raise OrderInvalid(f"An order has at most {rules.max_order_lines} lines.", errors=[
            {"loc": ["body", "items"], "msg": f"at most {rules.max_order_lines} lines", "type": "value_error"}])
    seen: set[tuple[uuid.UUID, str]] = set()
    member_of = set(await publishers.publisher_ids_of(session, actor.user_id))
    priced: list[_Priced] = []
    for index, item in enumerate(body.items):
        if (item.listing_id, item.delivery) in seen:
            raise OrderInvalid("Each listing appears once per delivery; raise the quantity instead.",
                               errors=_field_error(index, "listing_id", "duplicate item"))
        seen.add((item.listing_id, item.delivery))
        try:
            listing = await catalog.get_by_id(session, item.listing_id)
        except ListingNotFound:
            listing = None
        if listing is None or listing.status != "published":
            raise ListingNotAvailable(f"Listing {item.listing_id} is not on sale.",
                                      errors=_field_error(index, "listing_id", "not on sale"))
        price = listing.digital_price if item.delivery == "digital" else listing.physical_price
        if price is None or listing.currency != currency:
            raise ListingNotAvailable(f"{listing.name} is not sold as a {item.delivery} item.",
                                      errors=_field_error(index, "delivery", f"no {item.delivery} offer"))
        if item.delivery == "digital" and item.quantity != 1:
            raise OrderInvalid("A digital item is bought once (quantity 1).",
                               errors=_field_error(index, "quantity", "must be 1 for digital items"))
        if item.quantity > rules.max_line_quantity:
            raise OrderInvalid(f"At most {rules.max_line_quantity} of one item per order.",
                               errors=_field_error(index, "quantity", f"at most {rules.max_line_quantity}"))
        if listing.publisher_id in member_of:
            raise OwnListing(f"{listing.name} is your publisher's own listing.")
        if item.delivery == "digital" and await library.is_entitled(session, user_id=actor.user_id,
                                                                     listing_id=listing.id):
            raise AlreadyOwned(f"You already own {listing.name}; it is in your library.")
        priced.append(_Priced(index, listing.id, listing.publisher_id, listing.name, item.delivery, item.quantity,
                              price))
    physical = any(line.delivery == "physical" for line in priced)
    if physical and body.shipping_address is None:
        raise ShippingAddressRequired("Give a shipping_address for the physical items.", errors=[
            {"loc": ["body", "shipping_address"], "msg": "required for physical items", "type": "value_error"}])
    if not physical and body.shipping_address is not None:
        raise OrderInvalid("Only orders with physical items take a shipping_address.", errors=[
            {"loc": ["body", "shipping_address"], "msg": "only for physical items", "type": "value_error"}])

    order_id = uuid.uuid4()
    coupon_id, coupon_code = None, None
    if body.coupon is not None:
        quote = await coupons.quote(session, code=body.coupon, user_id=actor.user_id, lines=[
            coupons.QuoteLine(listing_id=line.listing_id, publisher_id=line.publisher_id, total=line.subtotal)
            for line in priced])
        for line, discount in zip(priced, quote.line_discounts, strict=True):
            line.discount = max(0, min(int(discount), line.subtotal))
        coupon_id, coupon_code = quote.coupon_id, quote.code

    now = utcnow()
    subtotal = sum(line.subtotal for line in priced)
    discount = sum(line.discount for line in priced)
    order = Order(id=order_id, user_id=actor.user_id, idempotency_key=idempotency_key, status="created",
                  currency=currency, subtotal=subtotal, discount=discount, total=subtotal - discount,
                  refunded_amount=0, coupon_id=coupon_id, coupon_code=coupon_code,
                  shipping_address=body.shipping_address.model_dump() if body.shipping_address else None,
                  commission_bps=rules.commission_bps, refund_window_days=rules.refund_window_days,
                  expires_at=now + timedelta(seconds=rules.order_timeout_seconds), created_at=now, updated_at=now)
    lines = [OrderLine(id=uuid.uuid4(), order_id=order_id, position=line.position, listing_id=line.listing_id,
                       publisher_id=line.publisher_id, title=line.title[:100], delivery=line.delivery,
                       quantity=line.quantity, unit_price=line.unit_price, discount=line.discount,
                       total=line.subtotal - line.discount, refunded_quantity=0, refunded_amount=0)
             for line in priced]
    shipments = [Shipment(id=uuid.uuid4(), order_id=order_id, publisher_id=publisher_id, status="pending",
                          created_at=now, updated_at=now)
                 for publisher_id in dict.fromkeys(line.publisher_id for line in priced if line.delivery == "physical")]

    if not await repository.add(session, order, lines, shipments):
        # The same key won by a concurrent request that committed first: that order is the answer.
        raise OrderTransitionRefused("An order with this Idempotency-Key is being created; retry to get it.")
    # Stock is reserved after the inserts, so the hot stock rows stay locked for as short a time
    # as possible (a flash sale queues on them: PERF-5); a refusal rolls the inserts back. In
    # listing order, so concurrent multi-item orders never wait on each other in a cycle.
    wanted: dict[uuid.UUID, int] = defaultdict(int)
    for line in priced:
        if line.delivery == "physical":
            wanted[line.listing_id] += line.quantity
    for listing_id in sorted(wanted):
        if not await catalog.reserve_stock(session, listing_id, wanted[listing_id]):
            title = next(line.title for line in priced if line.listing_id == listing_id)
            raise OutOfStock(f"Fewer than {wanted[listing_id]} of {title} are left.")
    if coupon_id is not None:
        await coupons.redeem(session, coupon_id=coupon_id, user_id=actor.user_id, order_id=order_id)
    await _publish(session, order, "order.created", lines=[_line_data(line) for line in lines])
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.order_create,
                resource_type="order", resource_id=order.id,
                after={"status": order.status, "total": order.total, "currency": order.currency,
                       "lines": [{"listing_id": line.listing_id, "quantity": line.quantity, "total": line.total}
                                 for line in lines]})
    await failpoint("saga.after_order_created")  # written, not committed (tests/orders/test_saga_faults.py)
    if order.total == 0:
        await _settle_free(session, order, lines)
    return order


async def _settle_free(session: AsyncSession, order: Order, lines: list[OrderLine]) -> None:
    """A free order takes no money: it is paid at once, and a digital one is entitled and
    completed in the same transaction (the "get" path); nothing of it may fail later."""
    now = utcnow()
    if any(line.delivery == "physical" for line in lines):
        await _mark_paid(session, order, lines, at=now)
        return
    refused = await library.grant_order(session, order_id=order.id, user_id=order.user_id, lines=[
        library.OrderLineToGrant(line.id, line.listing_id, line.delivery) for line in lines])
    if refused is not None:
        error = AlreadyOwned if refused.reason == "already_owned" else LicenceKeysExhausted
        raise error(refused.detail)
    await repository.transition(session, order.id, from_=("created",), to="completed", at=now, paid_at=now,
                                completed_at=now)
    await _reached(session, order, "completed", before="created")
    await _publish(session, order, "order.completed", lines=[_line_data(line) for line in lines],
                   commission_bps=order.commission_bps)


# --- payment --------------------------------------------------------------------------------------

async def _mark_paid(session: AsyncSession, order: Order, lines: list[OrderLine], *, at: datetime,
                     actor: Principal | None = None) -> bool:
    """created | awaiting_payment → paid (digital only) or awaiting_shipment (with physical
    lines: their shipments now wait for the publishers). False when the order was elsewhere."""
    physical = any(line.delivery == "physical" for line in lines)
    to = "awaiting_shipment" if physical else "paid"
    before = order.status
    if not await repository.transition(session, order.id, from_=UNPAID, to=to, at=at, paid_at=at):
        return False
    change = {"before": {"status": before}, "after": {"status": to, "total": order.total, "currency": order.currency}}
    if actor is not None:  # the buyer paid from the wallet in a request
        await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.order_pay,
                    resource_type="order", resource_id=order.id, **change)
    else:  # the saga: the wallet debit, a provider payment, a free order
        await audit_system(session, action=AuditAction.order_pay, resource_type="order", resource_id=order.id,
                           **change)
    if physical:
        await repository.move_shipments(session, order.id, from_=("pending",), to="awaiting", at=at)
    await _publish(session, order, "order.paid", physical=physical, lines=[_line_data(line) for line in lines])
    return True


async def on_debited(session: AsyncSession, *, order_id: uuid.UUID) -> None:
    """``wallet.debited``: the total is in escrow. An order that ended meanwhile (the buyer
    canceled, it expired) gets the money back at once."""
    order = await repository.by_id(session, order_id, fresh=True)
    if order is None:
        return
    if await _mark_paid(session, order, await _lines(session, order_id), at=utcnow()):
        return
    if order.status in ("canceled", "expired", "failed"):
        await _return_escrow(session, order, memo="Order ended before it was paid")


async def on_debit_refused(session: AsyncSession, *, order_id: uuid.UUID, shortfall: int) -> None:
    """``wallet.debit_refused``: the buyer pays the shortfall through a provider (``POST /orders/{id}/pay``)."""
    order = await repository.by_id(session, order_id, fresh=True)
    if order is None:
        return
    if await repository.transition(session, order_id, from_=("created",), to="awaiting_payment", at=utcnow()):
        await _publish(session, order, "order.awaiting_payment", shortfall=shortfall)


async def _debit_and_mark_paid(session: AsyncSession, order: Order, *, actor: Principal | None = None) -> bool:
    """Debit the wallet and mark the order paid together, or neither (the wallet is short,
    or the order left ``created``/``awaiting_payment``: expired or canceled first)."""
    lines = await _lines(session, order.id)
    try:
        async with session.begin_nested():
            if not await _mark_paid(session, order, lines, at=utcnow(), actor=actor):
                return False
            await wallet.debit_order(session, order_id=order.id, user_id=order.user_id, amount=order.total,
                                     currency=order.currency)
    except InsufficientFunds:
        await session.refresh(order)
        return False
    return True


async def on_payment_succeeded(session: AsyncSession, *, payment_id: uuid.UUID, order_id: uuid.UUID,
                               user_id: uuid.UUID, provider: str, amount: int, currency: str) -> None:
    """A provider payment for an order arrived (M5). The wallet holds it (credited here too,
    idempotent by reference: it does not matter whether the wallet's own subscriber ran
    first). An order still waiting is debited again; whatever of the payment the order did
    not need — all of it for an order that expired, was canceled or was paid otherwise, the
    excess of an overpayment — goes back to the payer through the provider."""
    await wallet.credit_payment(session, payment_id=payment_id, user_id=user_id, provider=provider, amount=amount,
                                currency=currency, order_id=order_id)
    order = await repository.by_id(session, order_id, fresh=True)
    if order is not None and order.status in UNPAID and order.user_id == user_id \
            and not await _debit_and_mark_paid(session, order):
        # Either still short, or the order left UNPAID meanwhile (the expiry sweep or the
        # buyer won the race: QUALITY M8), and then the late money must go back below.
        await session.refresh(order)
        if order.status in UNPAID:
            return  # still short: the money waits in the wallet for the next attempt
    # The part of the payment still in the wallet was not needed by this order.
    excess = min(amount, await wallet.balance(session, user_id))
    if excess > 0:
        reason = "overpayment" if order is not None and order.status not in ("expired", "canceled", "failed") \
            else "order ended before the payment arrived"
        await payments.refund(session, payment_id=payment_id, amount=excess, reason=reason)


async def pay(session: AsyncSession, *, actor: Principal, order_id: uuid.UUID) -> tuple[Order, Any]:
    """``POST /orders/{id}/pay``: the buyer's order waiting for money. When the wallet holds
    the total by now, it is debited at once (no payment); otherwise a provider payment for
    the shortfall is started and returned with its ``checkout_url``."""
    order = await repository.visible(session, order_id, buyer_id=actor.user_id)
    if order is None:
        raise OrderNotFound(f"There is no order {order_id}.")
    if order.status != "awaiting_payment":
        raise OrderTransitionRefused(f"Order {order.id} is {order.status}; only orders awaiting payment are paid "
                                     "this way.")
    balance = await wallet.balance(session, actor.user_id)
    if balance >= order.total:
        if await _debit_and_mark_paid(session, order, actor=actor):
            return order, None
        # Lost a race: the order left awaiting_payment, or the wallet was spent meanwhile.
        if order.status != "awaiting_payment":
            raise OrderTransitionRefused(f"Order {order.id} is {order.status} now.")
        balance = await wallet.balance(session, actor.user_id)
        if balance >= order.total:
            raise OrderTransitionRefused("The wallet changed while paying; try again.")
    payment = await payments.start_payment(session, user_id=actor.user_id, amount=order.total - balance,
                                           purpose="order", order_id=order.id)
    return order, payment


# --- completion, failure and the end of unpaid orders -----------------------------------------------

async def complete(session: AsyncSession, *, order_id: uuid.UUID) -> bool:
    """``entitlement.granted`` for the order: → ``completed`` with ``order.completed``."""
    order = await repository.by_id(session, order_id, fresh=True)
    if order is None:
        return False
    now = utcnow()
    before = order.status
    if not await repository.transition(session, order_id, from_=COMPLETABLE, to="completed", at=now,
                                       completed_at=now):
        return False
    await _reached(session, order, "completed", before=before)
    await _publish(session, order, "order.completed", commission_bps=order.commission_bps,
                   lines=[_line_data(line) for line in await _lines(session, order_id)])
    return True


async def fail(session: AsyncSession, *, order_id: uuid.UUID, reason: str) -> bool:
    """``entitlement.refused``: → ``failed`` (the wallet returns the escrow on the same event)."""
    order = await repository.by_id(session, order_id, fresh=True)
    if order is None:
        return False
    return await _close(session, order, from_=FAILABLE, to="failed", reason=reason, event="order.failed")


async def _close(session: AsyncSession, order: Order, *, from_: tuple[str, ...], to: str, reason: str,
                 event: str, by: str | None = None) -> bool:
    """End an order: the guarded transition, then — once, because only the transition's
    winner gets here — the stock of every shipment that did not leave back on the shelf, an
    unpaid order's coupon given back, and the event (the wallet returns money taken)."""
    now = utcnow()
    was = order.status
    if not await repository.transition(session, order.id, from_=from_, to=to, at=now, closed_at=now,
                                       failure_reason=reason):
        return False
    # A cancel is audited by whoever canceled (cancel()); failure and expiry are the saga's.
    await _reached(session, order, to, before=was, reason=reason, audited=by is not None)
    unshipped = set(await repository.move_shipments(session, order.id, from_=("pending", "awaiting"), to="canceled",
                                                    at=now))
    for line in await _lines(session, order.id):
        if line.delivery == "physical" and line.publisher_id in unshipped:
            await catalog.return_stock(session, line.listing_id, line.quantity)
    if order.coupon_id is not None and was in UNPAID:
        await coupons.release(session, order_id=order.id)
    await _publish(session, order, event, reason=reason, **({"by": by} if by else {}))
    return True


SYSTEM_OUTCOMES = {"completed": AuditAction.order_complete, "failed": AuditAction.order_fail,
                   "expired": AuditAction.order_expire, "canceled": AuditAction.order_cancel}


async def _reached(session: AsyncSession, order: Order, outcome: str, *, before: str, reason: str | None = None,
                   audited: bool = False) -> None:
    """An order reached an outcome in this transaction: counted in /metrics once it commits,
    and audited as the saga's step unless the caller audits it with its actor."""
    count_on_commit(session, ORDERS.labels(outcome))
    if not audited:
        after: dict[str, Any] = {"status": outcome, "total": order.total, "currency": order.currency}
        if reason:
            after["reason"] = reason
        await audit_system(session, action=SYSTEM_OUTCOMES[outcome], resource_type="order", resource_id=order.id,
                           before={"status": before}, after=after)


async def _return_escrow(session: AsyncSession, order: Order, *, memo: str) -> None:
    """The whole total back to the buyer: one reference per order, so every path that
    compensates (cancel, expiry, failure, a debit landing after the end) returns it once."""
    if order.total > 0:
        await wallet.return_escrow(session, reference=f"order-compensate:{order.id}", order_id=order.id,
                                   user_id=order.user_id, amount=order.total, currency=order.currency, memo=memo)


async def expire_due(session: AsyncSession, *, now: datetime | None = None, limit: int = 200) -> int:
    """The sweep (M5): unpaid orders past ``expires_at`` → ``expired``. A payment racing it
    either paid the order first (then it is no longer unpaid) or finds it expired and is
    refunded (QUALITY M8: paid XOR expired)."""
    expired = 0
    for order_id in await repository.due_for_expiry(session, now=now or utcnow(), limit=limit):
        order = await repository.by_id(session, order_id, fresh=True)
        if order is not None and await _close(session, order, from_=UNPAID, to="expired",
                                              reason="Not paid in time", event="order.expired"):
            expired += 1
    return expired


# --- the buyer's and the publisher's actions ---------------------------------------------------------

async def _shipments(session: AsyncSession, order_id: uuid.UUID) -> list[Shipment]:
    return (await repository.shipments_of(session, [order_id]))[order_id]


async def _fulfilling(session: AsyncSession, actor: Principal, order: Order) -> tuple[list[uuid.UUID], bool]:
    """The publishers of the order's shipments the actor acts for (``order:fulfil``), and
    whether through ``any``."""
    condition = actor.condition_for(Permission.order_fulfil)
    shipping = [shipment.publisher_id for shipment in await _shipments(session, order.id)]
    if condition is Condition.any:
        return shipping, True
    if condition is Condition.own:
        mine = set(await publishers.publisher_ids_for(session, actor, Permission.order_fulfil))
        return [publisher_id for publisher_id in shipping if publisher_id in mine], False
    return [], False


async def cancel(session: AsyncSession, *, actor: Principal, order_id: uuid.UUID) -> Order:
    """The buyer cancels an unpaid order; a publisher of the order (or an admin) cancels one
    awaiting shipment before anything shipped: full refund, stock back. Anyone else: 404."""
    order = await repository.by_id(session, order_id, fresh=True)
    if order is None:
        raise OrderNotFound(f"There is no order {order_id}.")
    if order.user_id == actor.user_id:
        before = order.status
        if not await _close(session, order, from_=UNPAID, to="canceled", reason="Canceled by the buyer",
                            event="order.canceled", by="buyer"):
            raise OrderTransitionRefused(f"Order {order.id} is {order.status}; the buyer cancels only unpaid orders.")
        await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.order_cancel,
                    resource_type="order", resource_id=order.id, before={"status": before},
                    after={"status": "canceled", "reason": "Canceled by the buyer"})
        return order
    any_cancel = actor.condition_for(Permission.order_cancel) is Condition.any
    fulfilling, fulfils_any = await _fulfilling(session, actor, order)
    if not any_cancel and not fulfilling:
        raise OrderNotFound(f"There is no order {order_id}.")
    before = order.status
    if any_cancel and before in UNPAID:
        moved = await _close(session, order, from_=UNPAID, to="canceled", reason="Canceled by an admin",
                             event="order.canceled", by="admin")
    else:
        by = "admin" if any_cancel or fulfils_any else "publisher"
        moved = await _cancel_awaiting_shipment(session, order, by=by)
    if not moved:
        raise OrderTransitionRefused(f"Order {order.id} is {order.status}; a publisher cancels only orders awaiting "
                                     "shipment, before anything shipped.")
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.order_cancel,
                resource_type="order", resource_id=order.id, before={"status": before},
                after={"status": order.status, "reason": order.failure_reason})
    return order


async def _cancel_awaiting_shipment(session: AsyncSession, order: Order, *, by: str) -> bool:
    now = utcnow()
    # Lock the order first (ship and deliver do the same), then check nothing left.
    if not await repository.lock(session, order.id, statuses=("awaiting_shipment",), at=now):
        return False
    if await repository.count_shipments(session, order.id, statuses=("shipped", "delivered")):
        return False
    return await _close(session, order, from_=("awaiting_shipment",), to="canceled",
                        reason=f"Canceled by the {by}", event="order.canceled", by=by)


async def ship(session: AsyncSession, *, actor: Principal, order_id: uuid.UUID, carrier: str,
               tracking_number: str) -> Order:
    """A publisher ships its part of a paid order (``order.shipped``; the buyer is notified);
    once every part shipped, the order is ``shipped``."""
    order, mine = await _for_fulfilment(session, actor, order_id)
    now = utcnow()
    if not await repository.lock(session, order.id, statuses=("awaiting_shipment",), at=now):
        raise OrderTransitionRefused(f"Order {order.id} is {order.status}; only paid orders awaiting shipment ship.")
    moved = await repository.move_shipments(session, order.id, from_=("awaiting",), to="shipped", at=now,
                                            publisher_ids=mine, carrier=carrier, tracking_number=tracking_number,
                                            shipped_at=now)
    if not moved:
        raise OrderTransitionRefused("Your part of this order has shipped already.")
    if not await repository.count_shipments(session, order.id, statuses=("pending", "awaiting")):
        await repository.transition(session, order.id, from_=("awaiting_shipment",), to="shipped", at=now)
    await session.refresh(order)
    for publisher_id in moved:
        event = await _publish(session, order, "order.shipped", publisher_id=str(publisher_id), carrier=carrier,
                               tracking_number=tracking_number)
        await notifications.notify(session, event_id=event.id, user_ids=[order.user_id], kind="order.shipped",
                                   title="Your order has shipped", body=f"{carrier}, tracking number {tracking_number}",
                                   link=f"/orders/{order.id}",
                                   data={"order_id": str(order.id), "carrier": carrier,
                                         "tracking_number": tracking_number})
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.order_ship,
                resource_type="order", resource_id=order.id, before={"status": "awaiting_shipment"},
                after={"status": order.status, "publishers": [str(p) for p in moved], "carrier": carrier,
                       "tracking_number": tracking_number})
    return order


async def deliver(session: AsyncSession, *, actor: Principal, order_id: uuid.UUID) -> Order:
    """A publisher marks its shipped part delivered; when every part is, ``order.delivered``
    lets the library entitle the buyer, which completes the order."""
    order, mine = await _for_fulfilment(session, actor, order_id)
    before = order.status
    now = utcnow()
    if not await repository.lock(session, order.id, statuses=("awaiting_shipment", "shipped"), at=now):
        raise OrderTransitionRefused(f"Order {order.id} is {order.status}; nothing of it is on its way.")
    moved = await repository.move_shipments(session, order.id, from_=("shipped",), to="delivered", at=now,
                                            publisher_ids=mine, delivered_at=now)
    if not moved:
        raise OrderTransitionRefused("Your part of this order has not shipped yet, or was delivered already.")
    await session.refresh(order)
    if not await repository.count_shipments(session, order.id, statuses=("pending", "awaiting", "shipped")):
        await _publish(session, order, "order.delivered",
                       lines=[_line_data(line) for line in await _lines(session, order.id)])
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.order_deliver,
                resource_type="order", resource_id=order.id, before={"status": before},
                after={"status": order.status, "publishers": [str(p) for p in moved], "delivered": True})
    return order


async def _for_fulfilment(session: AsyncSession, actor: Principal, order_id: uuid.UUID
                          ) -> tuple[Order, list[uuid.UUID]]:
    """The order and the publishers of it the actor ships for; 404 when there are none
    (another publisher's order, or no physical lines)."""
    order = await repository.by_id(session, order_id, fresh=True)
    if order is None:
        raise OrderNotFound(f"There is no order {order_id}.")
    mine, _ = await _fulfilling(session, actor, order)
    if not mine:
        raise OrderNotFound(f"There is no order {order_id}.")
    return order, mine


# --- what other modules read and change of an order (receipts, refunds, licences, stats) ---------------

REFUNDABLE = repository.REFUNDABLE


async def find(session: AsyncSession, order_id: uuid.UUID, *, buyer_id: uuid.UUID | None = None) -> Order | None:
    """The order, read fresh; with ``buyer_id`` only if it is that user's (others' orders do
    not exist for them). None when there is none."""
    return await repository.visible(session, order_id, buyer_id=buyer_id)


async def lines(session: AsyncSession, order_id: uuid.UUID) -> list[OrderLine]:
    """The order's lines in their order."""
    return await _lines(session, order_id)


async def lock_lines(session: AsyncSession, line_ids: Iterable[uuid.UUID]) -> None:
    """Hold the lines until the caller's transaction ends (refund settlements of one line
    take turns, so each sees what the ones before it reversed)."""
    await repository.lock_lines(session, line_ids)


async def take_refunded_units(session: AsyncSession, line_id: uuid.UUID, *, quantity: int, amount: int) -> bool:
    """A refund takes ``quantity`` units of the line (worth ``amount``): False, changing
    nothing, when fewer are left unrefunded (a concurrent refund took them)."""
    return await repository.take_refunded_units(session, line_id, quantity=quantity, amount=amount)


async def add_refunded(session: AsyncSession, order_id: uuid.UUID, amount: int, *, at: datetime) -> None:
    """Count ``amount`` more of a completed order as refunded: ``partially_refunded``, or
    ``refunded`` once all of its total is."""
    if await repository.add_refunded(session, order_id, amount, at=at) == "refunded":
        count_on_commit(session, ORDERS.labels("refunded"))


async def listing_of_line(session: AsyncSession, line_id: uuid.UUID) -> uuid.UUID | None:
    """The listing an order line is for; None when there is no such line."""
    return await repository.listing_of_line(session, line_id)


async def link_licence_key(session: AsyncSession, line_id: uuid.UUID, key_id: uuid.UUID) -> None:
    """Record on the order line the licence key handed out to it (``order_lines.licence_key_id``)."""
    await repository.link_licence_key(session, line_id, key_id)


async def counts_since(session: AsyncSession, since: datetime) -> dict[str, int]:
    """Orders created since ``since`` by status (the admin health page)."""
    return await repository.counts_since(session, since)
