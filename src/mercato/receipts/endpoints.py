"""Receipts (M10) of completed orders and succeeded payments: JSON, or a printable HTML page
when the client asks for ``text/html`` (a browser following a link does)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response

from mercato.access.dependencies import requires
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.platform.pages import render as render_page
from mercato.platform.routing import ReadSession, RuntimeDep, TransactionalRoute
from mercato.receipts import service
from mercato.receipts.schemas import ReceiptRead
from mercato.receipts.service import NoReceiptYet, Receipt, ReceiptNotFound

router = APIRouter(route_class=TransactionalRoute, tags=["money"])

HTML_OR_JSON = {200: {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ReceiptRead"}},
                                  "text/html": {"schema": {"type": "string"}}},
                      "description": "The receipt, as JSON or (Accept: text/html) a printable page."}}


async def _answer(request: Request, receipt: Receipt, accept: str | None, store_name: str) -> Response:
    if accept and _prefers_html(accept):
        # the printable page in the store's layout, with its headers
        return await render_page(request, "buyer/receipt.html", {"receipt": receipt, "store_name": store_name})
    return JSONResponse(ReceiptRead.of(receipt).model_dump(mode="json"))


def _prefers_html(accept: str) -> bool:
    """text/html listed before (or instead of) JSON: what a browser sends."""
    kinds = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if "text/html" not in kinds:
        return False
    return "application/json" not in kinds or kinds.index("text/html") < kinds.index("application/json")


@router.get("/orders/{order_id}/receipt", response_model=ReceiptRead, response_class=Response,
            responses={**HTML_OR_JSON, **ReceiptNotFound.responses(NoReceiptYet)})
async def order_receipt(request: Request, order_id: uuid.UUID,
                        actor: Annotated[Principal, requires(Permission.order_read)],
                        session: ReadSession, rt: RuntimeDep,
                        accept: Annotated[str | None, Header()] = None) -> Response:
    """The receipt of your completed order (refunds shown as they happen)."""
    receipt = await service.for_order(session, actor=actor, order_id=order_id)
    return await _answer(request, receipt, accept, rt.settings.store_name)


@router.get("/payments/{payment_id}/receipt", response_model=ReceiptRead, response_class=Response,
            responses={**HTML_OR_JSON, **ReceiptNotFound.responses(NoReceiptYet)})
async def payment_receipt(request: Request, payment_id: uuid.UUID,
                          actor: Annotated[Principal, requires(Permission.payment_read)],
                          session: ReadSession, rt: RuntimeDep,
                          accept: Annotated[str | None, Header()] = None) -> Response:
    """The receipt of your succeeded payment (a top-up, or the part of an order paid by card)."""
    receipt = await service.for_payment(session, actor=actor, payment_id=payment_id)
    return await _answer(request, receipt, accept, rt.settings.store_name)
