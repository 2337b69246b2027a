"""The sandbox provider's own pages and API (enabled by ``sandbox_payments_enabled``).

These routes play an outside provider's site, so they live outside ``/api/v1`` and need no
store credentials: the pay page a payer opens from a payment's ``checkout_url``, and the
provider-side status API. Their answers come from the sandbox's books, never from the
store's payments.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from mercato.access.dependencies import public
from mercato.kit.clock import utcnow
from mercato.kit.errors import found_or_raise
from mercato.kit.money import format_money
from mercato.models import SandboxPayment
from mercato.payments import repository
from mercato.payments.providers.sandbox import (
    TEST_CARDS,
    SandboxCheckoutClosed,
    SandboxCheckoutNotFound,
    SandboxProvider,
    UnknownTestCard,
    report_of,
)
from mercato.payments.schemas import SandboxStatus
from mercato.platform.pages import render as render_page
from mercato.platform.routing import ReadSession, RuntimeDep, TransactionalRoute, WriteSession
from mercato.platform.runtime import Runtime

router = APIRouter(route_class=TransactionalRoute, tags=["sandbox provider"], dependencies=[public()])

def _sandbox(rt: Runtime) -> SandboxProvider:
    provider = rt.payments.providers.get("sandbox")
    if not isinstance(provider, SandboxProvider):
        raise SandboxCheckoutNotFound("The sandbox provider is switched off.")
    return provider


async def _page(request: Request, session: AsyncSession, row: SandboxPayment, *, status_code: int = 200,
                error: str | None = None, card_number: str = "") -> Response:
    """The pay page in the store's layout (web/templates/sandbox/pay.html), with the pages' headers;
    once the payer acted, a link back to where the store sends them (the order, or the wallet)."""
    payment = await repository.get(session, row.merchant_payment_id)
    back = None
    if payment is not None and row.status != "open":
        back = f"/orders/{payment.order_id}" if payment.order_id else f"/wallet?payment={payment.id}"
    return await render_page(request, "sandbox/pay.html", {
        "payment": row, "amount_text": format_money(row.amount, row.currency), "error": error,
        "card_number": card_number, "action_url": f"/sandbox/pay/{row.merchant_payment_id}",
        "test_cards": TEST_CARDS, "back": back}, status_code=status_code, headers={"Cache-Control": "no-store"})


@router.get("/sandbox/pay/{payment_id}", response_class=HTMLResponse,
            responses=SandboxCheckoutNotFound.responses())
async def pay_page(request: Request, payment_id: uuid.UUID, session: ReadSession, rt: RuntimeDep) -> Response:
    """The sandbox's hosted pay page: the amount, a card number field, Approve / Decline."""
    return await _page(request, session, await _sandbox(rt).checkout(session, payment_id))


_PAGE = {"text/html": {"schema": {"type": "string"}}}


@router.post("/sandbox/pay/{payment_id}", response_class=HTMLResponse, responses={
    **SandboxCheckoutNotFound.responses(SandboxCheckoutClosed, UnknownTestCard),
    # These two are the pay page again, with the error shown beside the form (kept as HTML).
    409: {"description": "The checkout is closed: the page says so", "content": _PAGE, "x-html-page": True},
    422: {"description": "An unknown test card (the page says so), or an invalid form (problem JSON)",
          "content": {**_PAGE, "application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemModel"}}},
          "x-html-page": True}})
async def pay(request: Request, payment_id: uuid.UUID,
              action: Annotated[Literal["approve", "decline", "cancel"], Form()], session: WriteSession, rt: RuntimeDep,
              card_number: Annotated[str, Form(max_length=32)] = "") -> Response:
    """The payer's answer (an HTML form post). The provider then tells the store by signed
    webhook (`POST /api/v1/payments/webhooks/sandbox`), subject to the failure injection."""
    sandbox = _sandbox(rt)
    try:
        row = await sandbox.pay(session, rt.db, payment_id=payment_id, action=action, card_number=card_number)
    except (SandboxCheckoutClosed, UnknownTestCard) as exc:
        current = await sandbox.checkout(session, payment_id)
        return await _page(request, session, current, status_code=exc.status, error=exc.detail,
                           card_number=card_number[:32])
    return await _page(request, session, row)


@router.get("/sandbox/api/payments/{provider_ref}", response_model=SandboxStatus,
            responses=SandboxCheckoutNotFound.responses())
async def sandbox_status(provider_ref: Annotated[str, Path(max_length=64)], session: ReadSession,
                         rt: RuntimeDep) -> SandboxStatus:
    """What the sandbox provider knows of one of its payments (what the store's poller asks)."""
    _sandbox(rt)
    row = found_or_raise(await repository.sandbox_by_ref(session, provider_ref),
                         SandboxCheckoutNotFound, f"The sandbox knows no payment {provider_ref!r}.")
    report = report_of(row, utcnow())
    return SandboxStatus(id=row.ref, merchant_payment_id=row.merchant_payment_id, status=report.status,
                         sandbox_status=row.status, amount=row.amount, currency=row.currency,
                         refunded_amount=row.refunded_amount, reason=row.reason)

