"""``/wallet`` (WEB.md; PRODUCT U1, M1, M2, M10): balance, movements, payments with their
receipts, and a top-up through the provider's pay page (which sends the payer back here)."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any

from fastapi import Request
from starlette.responses import Response

from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.kit.errors import MercatoError
from mercato.kit.money import EXPONENTS, format_money
from mercato.kit.pagination import CursorParam, created_cursor, decode_cursor, keyset_page
from mercato.payments import service as payments
from mercato.payments.errors import PaymentNotFound
from mercato.payments.schemas import MAX_TOPUP, MIN_TOPUP
from mercato.platform.routing import ReadSession, RuntimeDep, WriteSession
from mercato.platform.runtime import Runtime
from mercato.receipts import service as receipts
from mercato.wallet import service as wallet
from mercato.web import once
from mercato.web.pages import page_router, redirect, render
from mercato.web.permits import permitted
from mercato.web.present import on_this_site

router = page_router()

WalletReader = Annotated[Principal, permitted(Permission.wallet_read)]
Payer = Annotated[Principal, permitted(Permission.payment_create)]
PaymentReader = Annotated[Principal, permitted(Permission.payment_read)]

_AMOUNT = re.compile(r"^\d{1,9}(?:[.,]\d{1,3})?$")


def parse_amount(text: str, currency: str) -> int | None:
    """``"25"``, ``"25.5"`` or ``"25,50"`` in the currency's major unit → minor units; None when it is not one."""
    text = text.strip().replace(" ", "")
    if not _AMOUNT.match(text):
        return None
    exponent = EXPONENTS.get(currency, 2)
    whole, _, part = text.replace(",", ".").partition(".")
    if len(part) > exponent:
        return None
    return int(whole) * 10 ** exponent + (int(part.ljust(exponent, "0")) if part else 0)


async def _context(request: Request, session: Any, rt: Runtime, actor: Principal, cursor: str | None,
                   **extra: Any) -> dict[str, Any]:
    currency = rt.settings.currency
    rows = await wallet.history(session, actor.user_id, after=decode_cursor(cursor), limit=21)
    page, next_cursor = keyset_page(rows, 20, lambda row: created_cursor(row[0]))
    recent = await payments.list_own(session, actor.user_id, after=None, limit=10)
    returned = None
    payment_id = request.query_params.get("payment")
    if payment_id:
        try:
            returned = await payments.get_visible(session, uuid.UUID(payment_id), user_id=actor.user_id,
                                                  any_user=False)
        except (ValueError, PaymentNotFound):
            returned = None
    # A top-up that succeeded is in the wallet once its credit is posted (a reaction shortly after):
    # until then the page says it is on its way and looks again, rather than show the old balance.
    crediting = (returned is not None and returned.status == "succeeded" and returned.purpose == "topup"
                 and not await wallet.payment_was_credited(session, returned.id))
    return {"balance": await wallet.balance(session, actor.user_id), "currency": currency,
            "movements": page, "payments": recent, "returned": returned, "crediting": crediting,
            "next_cursor": next_cursor,
            "topup_key": once.new_key(), "local": lambda url: on_this_site(url, rt.settings),
            "min_topup": format_money(MIN_TOPUP, currency),
            "max_topup": format_money(MAX_TOPUP, currency), "values": {}, "errors": {}, **extra}


@router.get("/wallet", name="wallet_page")
async def wallet_page(request: Request, actor: WalletReader, session: ReadSession, rt: RuntimeDep,
                      cursor: CursorParam = None) -> Response:
    context = await _context(request, session, rt, actor, cursor)
    # While a payment the payer came back from is pending, or not yet in the wallet, the page looks again.
    waiting = context["crediting"] or (context["returned"] is not None and context["returned"].status == "pending")
    headers = {"Refresh": "2"} if waiting else None
    return await render(request, "buyer/wallet.html", context, headers=headers)


@router.post("/wallet/topup", name="wallet_topup")
async def wallet_topup(request: Request, actor: Payer, session: WriteSession, rt: RuntimeDep) -> Response:
    """Start a top-up (as ``POST /api/v1/wallet/topups``) and go on to the provider's pay page."""
    form = await request.form()
    raw = form.get("amount")
    text = raw.strip() if isinstance(raw, str) else ""
    currency = rt.settings.currency
    amount = parse_amount(text, currency)
    problem = None
    if amount is None:
        problem = "Enter an amount such as 25 or 25.50."
    elif not MIN_TOPUP <= amount <= MAX_TOPUP:
        problem = f"Top up between {format_money(MIN_TOPUP, currency)} and {format_money(MAX_TOPUP, currency)}."
    if problem is None:
        key = form.get(once.FIELD)
        await once.claim(request, actor, key if isinstance(key, str) else None)
        try:
            assert amount is not None
            payment = await payments.start_payment(session, user_id=actor.user_id, amount=amount, purpose="topup",
                                                   gateway=rt.payments)
        except MercatoError as exc:
            if session.in_transaction():
                await session.rollback()
            problem = exc.detail
        else:
            return redirect(on_this_site(payment.checkout_url, rt.settings) if payment.checkout_url
                            else f"/wallet?payment={payment.id}")
    async with rt.db.read_session() as reader:
        context = await _context(request, reader, rt, actor, None, values={"amount": text},
                                 errors={"amount": problem})
    return await render(request, "buyer/wallet.html", context, status_code=422)


@router.get("/wallet/payments/{payment_id}/receipt", name="payment_receipt_page")
async def payment_receipt_page(request: Request, payment_id: uuid.UUID, actor: PaymentReader, session: ReadSession,
                               rt: RuntimeDep) -> Response:
    receipt = await receipts.for_payment(session, actor=actor, payment_id=payment_id)
    return await render(request, "buyer/receipt.html", {"receipt": receipt, "store_name": rt.settings.store_name,
                                                        "back": "/wallet"})
