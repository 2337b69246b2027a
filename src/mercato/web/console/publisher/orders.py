"""The publisher console's physical orders (U2): ship, mark delivered, or cancel and refund
(``order:fulfil``, ``order:cancel``), through the orders service."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import Form, Request
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.kit.errors import MercatoError
from mercato.orders import service as orders
from mercato.orders.schemas import Shipping
from mercato.platform.routing import ReadSession, WriteSession, get_runtime
from mercato.publishers import service as publishers
from mercato.web.console.access import console_actor, discard, refused
from mercato.web.console.publisher.common import PREFIX, form_invalid
from mercato.web.pages import page_router, redirect, render

router = page_router(prefix=PREFIX)

Fulfiller = Annotated[Principal, console_actor(Permission.order_fulfil)]
Canceller = Annotated[Principal, console_actor(Permission.order_cancel)]
ORDER_FILTERS = ("awaiting_shipment", "shipped", "completed", "canceled", "")


async def _orders_context(session: AsyncSession, actor: Principal, slug: str, status: str) -> dict[str, Any]:
    return {"publisher": await publishers.get(session, slug), "status": status, "filters": ORDER_FILTERS,
            "orders": await orders.of_publisher(session, actor=actor, slug=slug, status=status or None, after=None,
                                                limit=100),
            "console": "publisher", "section": "orders"}


@router.get("/orders", name="console_publisher_orders")
async def orders_page(slug: str, request: Request, session: ReadSession, actor: Fulfiller,
                      status: Literal["awaiting_shipment", "shipped", "completed", "canceled", ""] = "awaiting_shipment"
                      ) -> Response:
    """Physical orders to ship, on their way and done (``GET /publishers/{slug}/orders``)."""
    return await render(request, "console/publisher/orders.html", await _orders_context(session, actor, slug, status))


async def _order_refused(request: Request, session: AsyncSession, actor: Principal, slug: str,
                         error: MercatoError) -> Response:
    await discard(session)
    async with get_runtime(request).db.read_session() as reader:
        context = await _orders_context(reader, actor, slug, "awaiting_shipment")
    return await refused(request, error, "console/publisher/orders.html", context)


@router.post("/orders/{order_id}/ship", name="console_publisher_ship")
async def ship(slug: str, order_id: uuid.UUID, request: Request, session: WriteSession, actor: Fulfiller,
               carrier: Annotated[str, Form(max_length=64)] = "",
               tracking_number: Annotated[str, Form(max_length=128)] = "") -> Response:
    try:
        try:
            body = Shipping.model_validate({"carrier": carrier.strip(), "tracking_number": tracking_number.strip()})
        except ValidationError as exc:
            raise form_invalid(exc) from None
        await orders.ship(session, actor=actor, order_id=order_id, carrier=body.carrier,
                          tracking_number=body.tracking_number)
    except MercatoError as error:
        return await _order_refused(request, session, actor, slug, error)
    return redirect(str(request.url_for("console_publisher_orders", slug=slug)) + "?status=shipped")


@router.post("/orders/{order_id}/deliver", name="console_publisher_deliver")
async def deliver(slug: str, order_id: uuid.UUID, request: Request, session: WriteSession,
                  actor: Fulfiller) -> Response:
    try:
        await orders.deliver(session, actor=actor, order_id=order_id)
    except MercatoError as error:
        return await _order_refused(request, session, actor, slug, error)
    return redirect(str(request.url_for("console_publisher_orders", slug=slug)) + "?status=shipped")


@router.post("/orders/{order_id}/cancel", name="console_publisher_cancel")
async def cancel(slug: str, order_id: uuid.UUID, request: Request, session: WriteSession,
                 actor: Canceller) -> Response:
    """Cancel an order awaiting shipment: the buyer is refunded (``POST /orders/{id}/cancel``)."""
    try:
        await orders.cancel(session, actor=actor, order_id=order_id)
    except MercatoError as error:
        return await _order_refused(request, session, actor, slug, error)
    return redirect(str(request.url_for("console_publisher_orders", slug=slug)) + "?status=canceled")
