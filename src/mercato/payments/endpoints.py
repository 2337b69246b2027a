"""Top-ups, the caller's payments, and the providers' webhooks (API.md "Money")."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Request

from mercato.access.dependencies import idempotent, public, requires
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.kit.pagination import CursorParam, Limit, decode_cursor, keyset_page
from mercato.kit.schemas import Page
from mercato.payments import service
from mercato.payments.errors import (
    InvalidSignature,
    MalformedWebhook,
    PaymentNotFound,
    ProviderError,
    ProviderNotConfigured,
    StaleWebhook,
    UnknownProvider,
)
from mercato.payments.schemas import PaymentRead, TopupCreate, WebhookReceipt
from mercato.platform.routing import ReadSession, RuntimeDep, TransactionalRoute, WriteSession

router = APIRouter(route_class=TransactionalRoute, tags=["money"])

PaymentReader = Annotated[Principal, requires(Permission.payment_read)]


@router.post("/wallet/topups", status_code=201, response_model=PaymentRead,
             responses=ProviderNotConfigured.responses(ProviderError))
async def create_topup(body: TopupCreate, actor: Annotated[Principal, requires(Permission.payment_create)],
                       _key: Annotated[str | None, idempotent(required=True)], session: WriteSession,
                       rt: RuntimeDep) -> PaymentRead:
    """Start a top-up of your wallet: a pending payment with the provider's `checkout_url`.
    Pay there; the wallet is credited when the provider confirms (webhook or poll).
    Requires an `Idempotency-Key`: the same key and body answers the same payment."""
    payment = await service.start_payment(session, user_id=actor.user_id, amount=body.amount, purpose="topup",
                                          gateway=rt.payments)
    return PaymentRead.from_model(payment)


@router.get("/payments", response_model=Page[PaymentRead])
async def my_payments(actor: PaymentReader, session: ReadSession, cursor: CursorParam = None,
                      limit: Limit = 20) -> Page[PaymentRead]:
    """Your payments, newest first."""
    rows = await service.list_own(session, actor.user_id, after=decode_cursor(cursor), limit=limit + 1)
    page, next_cursor = keyset_page(rows, limit)
    return Page[PaymentRead](items=[PaymentRead.from_model(p) for p in page], next_cursor=next_cursor)


@router.get("/payments/{payment_id}", response_model=PaymentRead, responses=PaymentNotFound.responses())
async def read_payment(payment_id: uuid.UUID, actor: PaymentReader, session: ReadSession) -> PaymentRead:
    """One of your payments (admins: any payment)."""
    payment = await service.get_visible(session, payment_id, user_id=actor.user_id,
                                        any_user=actor.has_any(Permission.payment_read))
    return PaymentRead.from_model(payment)


@router.post("/payments/webhooks/{provider}", response_model=WebhookReceipt, dependencies=[public()],
             responses=UnknownProvider.responses(InvalidSignature, StaleWebhook, MalformedWebhook))
async def provider_webhook(request: Request, session: WriteSession, rt: RuntimeDep,
                           provider: Annotated[str, Path(max_length=32)]) -> WebhookReceipt:
    """A payment provider reports (no credentials: the body's signature is verified —
    `Mercato-Signature` for the sandbox, `Stripe-Signature` for Stripe). A bad signature
    answers 400 `invalid_signature`, one older than 300 s 400 `stale_webhook`; a duplicate
    or out-of-order report answers 200 and changes nothing."""
    body = await request.body()
    effect = await service.receive_webhook(session, gateway=rt.payments, provider=provider, body=body,
                                           headers=request.headers)
    return WebhookReceipt(received=True, effect=effect)
