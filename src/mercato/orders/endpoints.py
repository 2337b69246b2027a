"""Orders over HTTP: checkout, the buyer's orders, paying a shortfall, cancelling, and the
publishers' fulfilment of physical items (PRODUCT M3–M5, M9; API.md "Money")."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from mercato.access.dependencies import idempotent, requires
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.kit.errors import Forbidden
from mercato.kit.failpoints import failpoint
from mercato.kit.money import Money
from mercato.kit.pagination import CursorParam, Limit, decode_cursor, keyset_page
from mercato.kit.schemas import Page, Slug
from mercato.live.waiting import wait_until
from mercato.orders import service
from mercato.orders.errors import (
    AlreadyOwned,
    ListingNotAvailable,
    OrderInvalid,
    OrderNotFound,
    OrderTransitionRefused,
    OutOfStock,
    PaymentsUnavailable,
)
from mercato.orders.schemas import (
    SETTLED_STATES,
    OrderCreate,
    OrderPaymentRead,
    OrderRead,
    OrderStatus,
    PaymentSummary,
    PublisherOrderRead,
    Shipping,
)
from mercato.platform.routing import ReadSession, RuntimeDep, TransactionalRoute, WriteSession
from mercato.platform.runtime import Runtime
from mercato.publishers.errors import PublisherNotFound

router = APIRouter(route_class=TransactionalRoute, tags=["orders"])

Buyer = Annotated[Principal, requires(Permission.order_create)]
Reader = Annotated[Principal, requires(Permission.order_read)]
Canceller = Annotated[Principal, requires(Permission.order_cancel)]
Fulfiller = Annotated[Principal, requires(Permission.order_fulfil)]
Wait = Annotated[float, Query(ge=0, le=30, description=(
    "Seconds (≤ 30) to wait for the order to reach a terminal or stable state (completed, failed, expired, "
    "canceled, awaiting_payment, awaiting_shipment, shipped) before answering."))]
StatusFilter = Annotated[OrderStatus | None, Query(description="Only orders in this state.")]


async def _wait_settled(rt: Runtime, actor: Principal, order_id: uuid.UUID, seconds: float) -> None:
    """Wait for the order to settle: its state is read again only when one of its events
    reaches the buyer's live stream, whichever process runs the saga."""
    async def settled() -> bool:
        async with rt.db.read_session() as session:
            return await service.status_of(session, order_id) in SETTLED_STATES

    await wait_until(rt.live, user_id=actor.user_id, subject=str(order_id), done=settled, seconds=seconds)


async def _read(rt: Runtime, actor: Principal, order_id: uuid.UUID) -> OrderRead:
    async with rt.db.read_session() as session:
        order = await service.get_visible(session, actor=actor, order_id=order_id)
        return (await service.present(session, [order]))[0]


@router.post("/orders", status_code=201, response_model=OrderRead,
             responses=OrderInvalid.responses(AlreadyOwned, OutOfStock, ListingNotAvailable))
async def create_order(body: OrderCreate, actor: Buyer, key: Annotated[str, idempotent(required=True)],
                       session: WriteSession, rt: RuntimeDep, wait: Wait = 0) -> OrderRead:
    """Check out: prices, commission and refund window are fixed on the order; physical
    stock is reserved now (409 `out_of_stock`, nothing created, when short). The order is
    then paid from your wallet by the saga; a free order completes at once. Needs an
    `Idempotency-Key`: the same key gives the same order. Errors: 409 `already_owned`,
    `own_listing`, `out_of_stock`, coupon errors; 422 `listing_not_available`,
    `order_invalid`, `shipping_address_required`."""
    order = await service.create(session, actor=actor, idempotency_key=key, body=body,
                                 currency=rt.settings.currency)
    if wait <= 0:
        return (await service.present(session, [order]))[0]
    # The saga runs on the committed order: commit first, then wait. A crash between the
    # commit and the stored reply leaves the key retryable, and the retry finds this order
    # by its (user, key) pair.
    await session.commit()
    await failpoint("saga.after_checkout_commit")  # committed, no reply stored (tests/orders/test_saga_faults.py)
    await _wait_settled(rt, actor, order.id, wait)
    return await _read(rt, actor, order.id)


@router.get("/orders", response_model=Page[OrderRead])
async def my_orders(actor: Reader, session: ReadSession, status: StatusFilter = None, cursor: CursorParam = None,
                    limit: Limit = 20) -> Page[OrderRead]:
    """Your orders, newest first."""
    rows = await service.of_buyer(session, actor=actor, status=status, after=decode_cursor(cursor), limit=limit + 1)
    page, next_cursor = keyset_page(rows, limit)
    return Page[OrderRead](items=await service.present(session, page), next_cursor=next_cursor)


@router.get("/orders/{order_id}", response_model=OrderRead, responses=OrderNotFound.responses())
async def get_order(order_id: uuid.UUID, actor: Reader, rt: RuntimeDep, wait: Wait = 0) -> OrderRead:
    """One of your orders (admins: any) with its lines, totals and shipments."""
    first = await _read(rt, actor, order_id)  # 404 at once for an order that is not yours
    if wait <= 0 or first.status in SETTLED_STATES:
        return first
    await _wait_settled(rt, actor, order_id, wait)
    return await _read(rt, actor, order_id)


@router.post("/orders/{order_id}/cancel", response_model=OrderRead,
             responses=OrderNotFound.responses(OrderTransitionRefused))
async def cancel_order(order_id: uuid.UUID, actor: Canceller, session: WriteSession) -> OrderRead:
    """The buyer cancels an unpaid order (created, awaiting_payment). A publisher of the
    order cancels it while it awaits shipment and nothing shipped yet: the buyer gets
    everything back, stock returns. Otherwise 409 `invalid_transition`."""
    order = await service.cancel(session, actor=actor, order_id=order_id)
    return (await service.present(session, [order]))[0]


@router.post("/orders/{order_id}/pay", response_model=OrderPaymentRead,
             responses=OrderNotFound.responses(OrderTransitionRefused, PaymentsUnavailable))
async def pay_order(order_id: uuid.UUID, actor: Buyer, session: WriteSession, rt: RuntimeDep,
                    _key: Annotated[str | None, idempotent(required=False)]) -> OrderPaymentRead:
    """Pay an order awaiting payment: from the wallet when it holds the total by now,
    else through the payment provider for the shortfall (follow `payment.checkout_url`)."""
    order, payment = await service.pay(session, actor=actor, order_id=order_id, gateway=rt.payments)
    summary = None
    if payment is not None:
        summary = PaymentSummary(id=payment.id, status=payment.status,
                                 amount=Money(amount=payment.amount, currency=payment.currency),
                                 checkout_url=payment.checkout_url, expires_at=payment.expires_at)
    return OrderPaymentRead(order=(await service.present(session, [order]))[0], payment=summary)


@router.post("/orders/{order_id}/ship", response_model=OrderRead,
             responses=OrderNotFound.responses(OrderTransitionRefused))
async def ship_order(order_id: uuid.UUID, body: Shipping, actor: Fulfiller, session: WriteSession) -> OrderRead:
    """A publisher ships its part of a paid order (carrier and tracking number; the buyer
    is notified). 404 for orders without a shipment of yours; 409 before payment."""
    order = await service.ship(session, actor=actor, order_id=order_id, carrier=body.carrier,
                               tracking_number=body.tracking_number)
    return (await service.present(session, [order]))[0]


@router.post("/orders/{order_id}/deliver", response_model=OrderRead,
             responses=OrderNotFound.responses(OrderTransitionRefused))
async def deliver_order(order_id: uuid.UUID, actor: Fulfiller, session: WriteSession) -> OrderRead:
    """A publisher marks its shipped part delivered; once every part is, the buyer is
    entitled and the order completes."""
    order = await service.deliver(session, actor=actor, order_id=order_id)
    return (await service.present(session, [order]))[0]


@router.get("/publishers/{slug}/orders", response_model=Page[PublisherOrderRead],
            responses=PublisherNotFound.responses(Forbidden))
async def publisher_orders(slug: Slug, actor: Fulfiller, session: ReadSession, status: StatusFilter = None,
                           cursor: CursorParam = None, limit: Limit = 20) -> Page[PublisherOrderRead]:
    """Orders with physical items of the publisher (members and admins), newest first:
    only its own lines and shipment, and the address once paid. Filter with
    `status=awaiting_shipment` for the work to do."""
    rows = await service.of_publisher(session, actor=actor, slug=slug, status=status, after=decode_cursor(cursor),
                                      limit=limit + 1)
    page, next_cursor = keyset_page(rows, limit)
    return Page[PublisherOrderRead](items=page, next_cursor=next_cursor)
