"""The publisher console's earnings (U2): the balance figures, the latest ledger movements and
payout requests (``earnings:read``, ``payout:request``), through the earnings service."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Form, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.earnings import service as earnings
from mercato.earnings.schemas import PayoutCreate
from mercato.kit.errors import MercatoError, ValidationFailed
from mercato.kit.money import SignedMoney
from mercato.platform import idempotency
from mercato.platform.routing import ReadSession, RuntimeDep, WriteSession
from mercato.web.console.access import console_actor, discard, refused
from mercato.web.console.publisher.common import PREFIX, parse_money
from mercato.web.pages import page_router, redirect, render

router = page_router(prefix=PREFIX)

EarningsReader = Annotated[Principal, console_actor(Permission.earnings_read)]
PayoutRequester = Annotated[Principal, console_actor(Permission.payout_request)]


async def _earnings_context(session: AsyncSession, actor: Principal, slug: str, currency: str) -> dict[str, Any]:
    publisher = await earnings.publisher_for(session, actor=actor, slug=slug, permission=Permission.earnings_read)
    payouts, _ = await earnings.search(session, publisher=slug, status=None, after=None, limit=50, with_total=False)
    summary = await earnings.summary(session, publisher_id=publisher.id)
    moved = await earnings.movements(session, publisher_id=publisher.id, after=None, limit=20)

    def money(amount: int) -> SignedMoney:
        return SignedMoney(amount=amount, currency=currency)

    return {"publisher": publisher, "payouts": payouts, "idempotency_key": str(uuid.uuid4()),
            "figures": [("available", money(summary.available), "available for a payout"),
                        ("pending", money(summary.pending_payouts), "payouts waiting"),
                        ("paid", money(summary.paid_out), "paid out"),
                        ("earned", money(summary.total_earned), "earned (after commission)")],
            "movements": [(entry.created_at, tx.memo or tx.kind, money(entry.amount)) for entry, tx in moved],
            "console": "publisher", "section": "earnings"}


@router.get("/earnings", name="console_publisher_earnings")
async def earnings_page(slug: str, request: Request, session: ReadSession, actor: EarningsReader,
                        rt: RuntimeDep) -> Response:
    return await render(request, "console/publisher/earnings.html", {
        **await _earnings_context(session, actor, slug, rt.settings.currency), "currency": rt.settings.currency})


@router.post("/payouts", name="console_publisher_request_payout")
async def request_payout(slug: str, request: Request, session: WriteSession, actor: PayoutRequester,
                         rt: RuntimeDep, amount: Annotated[str, Form(max_length=32)] = "",
                         idempotency_key: Annotated[str, Form(max_length=255)] = "") -> Response:
    """``POST /publishers/{slug}/payouts``: the form carries its own idempotency key, so a
    second click or a reload answers with the first result instead of a second payout."""
    try:
        problems: list[dict[str, Any]] = []
        minor = parse_money(amount, "amount", problems)
        if problems or not minor:
            raise ValidationFailed("Give an amount like 25.00.", errors=problems or [
                {"loc": ["form", "amount"], "msg": "More than 0", "type": "value_error"}])
        key = idempotency.validate_key(idempotency_key or None, required=True)
        assert key is not None
        request.state.idempotency_claim = await idempotency.claim(
            rt.db, owner=f"user:{actor.user_id}", key=key,
            request_hash=idempotency.fingerprint("POST", request.url.path, f"amount={minor}".encode()),
            retention=timedelta(hours=rt.settings.idempotency_retention_hours),
            lease=timedelta(seconds=rt.settings.idempotency_lease_seconds))
        body = PayoutCreate(amount=minor)
        publisher = await earnings.publisher_for(session, actor=actor, slug=slug, permission=Permission.payout_request)
        await earnings.request_payout(session, actor=actor, publisher=publisher, amount=body.amount,
                                      currency=rt.settings.currency)
    except MercatoError as error:
        await discard(session)
        async with rt.db.read_session() as reader:
            context = await _earnings_context(reader, actor, slug, rt.settings.currency)
        return await refused(request, error, "console/publisher/earnings.html",
                             {**context, "currency": rt.settings.currency, "values": {"amount": amount}})
    return redirect(str(request.url_for("console_publisher_earnings", slug=slug)) + "?requested=1")
