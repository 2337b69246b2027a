"""``/orders`` and ``/orders/{id}`` (WEB.md; PRODUCT U1, M3–M6, M10): order history, live
status, paying a shortfall through the provider's pay page, cancel, refund request, receipt.

The status box refreshes from ``/orders/{id}/status`` at each of the order's events (the page's
live stream, ``/live/{order_id}`` in web/live.py, over the cookie session: the API's stream
takes bearer tokens only) and polls slowly as a safety net, until the order reaches a state
that waits for nobody in the saga.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.kit.errors import MercatoError
from mercato.kit.pagination import CursorParam, decode_cursor, keyset_page
from mercato.orders import service as orders
from mercato.orders.schemas import OrderRead
from mercato.platform.routing import ReadSession, RuntimeDep, WriteSession
from mercato.receipts import service as receipts
from mercato.refunds import service as refunds
from mercato.web import once
from mercato.web.pages import page_router, redirect, render
from mercato.web.permits import permitted
from mercato.web.present import on_this_site

router = page_router()

Reader = Annotated[Principal, permitted(Permission.order_read)]
Buyer = Annotated[Principal, permitted(Permission.order_create)]
Canceller = Annotated[Principal, permitted(Permission.order_cancel)]
Requester = Annotated[Principal, permitted(Permission.refund_request)]

# While the order is in one of these, something is about to happen to it: the page keeps asking,
# often while the saga runs, now and then while the publishers ship.
MOVING = frozenset({"created", "paid", "awaiting_payment"})
SHIPPING = frozenset({"awaiting_shipment", "shipped"})
REFUNDABLE = frozenset({"completed", "partially_refunded"})
STEPS = ("created", "paid", "completed")
LABELS = {"created": "Placed", "awaiting_payment": "Waiting for payment", "paid": "Paid",
          "awaiting_shipment": "Paid, waiting for shipment", "shipped": "Shipped", "completed": "Complete",
          "expired": "Expired (not paid in time)", "canceled": "Canceled", "failed": "Failed",
          "partially_refunded": "Partly refunded", "refunded": "Refunded"}


async def _order(session: AsyncSession, actor: Principal, order_id: uuid.UUID) -> OrderRead:
    order = await orders.get_visible(session, actor=actor, order_id=order_id)  # 404 page if not theirs
    return (await orders.present(session, [order]))[0]


async def _context(session: AsyncSession, actor: Principal, order_id: uuid.UUID, **extra: Any) -> dict[str, Any]:
    order = await _order(session, actor, order_id)
    asked = await refunds.visible(session, actor=actor, status=None, order_id=order.id, after=None, limit=50)
    # the live stream (data-live, web/live.py) refreshes the box at each change; the poll is its safety net
    poll = "every 4s" if order.status in MOVING else "every 10s" if order.status in SHIPPING else None
    return {"order": order, "refunds": asked, "labels": LABELS, "poll": poll,
            # nothing to give back on a free order: the page offers no refund (the API refuses it too)
            "refundable": order.status in REFUNDABLE and order.total.amount > 0,
            "refund_key": once.new_key(), "pay_key": once.new_key(),
            "errors": {}, "values": {}, "error": None, "seen": None, **extra}


@router.get("/orders", name="orders_page")
async def orders_page(request: Request, actor: Reader, session: ReadSession, cursor: CursorParam = None) -> Response:
    rows = await orders.of_buyer(session, actor=actor, status=None, after=decode_cursor(cursor), limit=21)
    page, next_cursor = keyset_page(rows, 20)
    return await render(request, "buyer/orders.html", {
        "orders": await orders.present(session, page), "labels": LABELS, "next_cursor": next_cursor})


@router.get("/orders/{order_id}", name="order_page")
async def order_page(request: Request, order_id: uuid.UUID, actor: Reader, session: ReadSession) -> Response:
    return await render(request, "buyer/order.html", await _context(session, actor, order_id))


@router.get("/orders/{order_id}/status", name="order_status")
async def order_status(request: Request, order_id: uuid.UUID, actor: Reader, session: ReadSession,
                       seen: Annotated[str | None, Query(max_length=32)] = None) -> Response:
    """The status box alone (what the page polls). ``seen`` is the state the page was drawn
    in: once the order moved on, htmx reloads the whole page (``HX-Refresh``), so what the new
    state offers (the refund form, the receipt) shows too."""
    context = await _context(session, actor, order_id, seen=seen)
    headers = {"Cache-Control": "no-store"}
    if seen is not None and seen != context["order"].status:
        headers["HX-Refresh"] = "true"
    return await render(request, "buyer/order_status.html", context, headers=headers)


async def _refused(request: Request, session: AsyncSession, rt: Any, actor: Principal, order_id: uuid.UUID,
                   exc: MercatoError, **extra: Any) -> Response:
    """The order page again with the problem beside the form; nothing of the attempt stays."""
    if session.in_transaction():
        await session.rollback()
    async with rt.db.read_session() as reader:
        context = await _context(reader, actor, order_id, **extra)
    return await render(request, "buyer/order.html", context, status_code=exc.status)


@router.post("/orders/{order_id}/cancel", name="order_cancel")
async def order_cancel(request: Request, order_id: uuid.UUID, actor: Canceller, session: WriteSession,
                       rt: RuntimeDep) -> Response:
    try:
        await orders.cancel(session, actor=actor, order_id=order_id)
    except MercatoError as exc:
        return await _refused(request, session, rt, actor, order_id, exc, error=exc.detail)
    return redirect(f"/orders/{order_id}")


@router.post("/orders/{order_id}/pay", name="order_pay")
async def order_pay(request: Request, order_id: uuid.UUID, actor: Buyer, session: WriteSession,
                    rt: RuntimeDep) -> Response:
    """Pay an order waiting for money: from the wallet when it holds the total by now, else
    on to the provider's pay page for the shortfall (it sends the payer back here)."""
    form = await request.form()
    key = form.get(once.FIELD)
    await once.claim(request, actor, key if isinstance(key, str) else None)
    try:
        _, payment = await orders.pay(session, actor=actor, order_id=order_id, gateway=rt.payments)
    except MercatoError as exc:
        return await _refused(request, session, rt, actor, order_id, exc, error=exc.detail)
    if payment is not None and payment.checkout_url:
        return redirect(on_this_site(payment.checkout_url, rt.settings))
    return redirect(f"/orders/{order_id}")


@router.post("/orders/{order_id}/refund", name="order_refund")
async def order_refund(request: Request, order_id: uuid.UUID, actor: Requester, session: WriteSession,
                       rt: RuntimeDep) -> Response:
    """Ask for the money back for everything not refunded yet, with a reason."""
    form = await request.form()
    reason = form.get("reason")
    reason = reason.strip() if isinstance(reason, str) else ""
    key = form.get(once.FIELD)
    if not 3 <= len(reason) <= 2000:
        async with rt.db.read_session() as reader:
            context = await _context(reader, actor, order_id, values={"reason": reason},
                                     errors={"reason": "Say why in 3 to 2000 characters."})
        return await render(request, "buyer/order.html", context, status_code=422)
    await once.claim(request, actor, key if isinstance(key, str) else None)
    try:
        await refunds.request(session, actor=actor, order_id=order_id, wanted=None, reason=reason)
    except MercatoError as exc:
        return await _refused(request, session, rt, actor, order_id, exc, values={"reason": reason},
                              errors={"reason": exc.detail})
    return redirect(f"/orders/{order_id}#refunds")


@router.get("/orders/{order_id}/receipt", name="order_receipt_page")
async def order_receipt_page(request: Request, order_id: uuid.UUID, actor: Reader, session: ReadSession,
                             rt: RuntimeDep) -> Response:
    receipt = await receipts.for_order(session, actor=actor, order_id=order_id)
    return await render(request, "buyer/receipt.html", {"receipt": receipt, "store_name": rt.settings.store_name,
                                                        "back": f"/orders/{order_id}"})
