"""Publisher earnings (M7) and payouts: members read their publisher's earnings and
request payouts; admins decide them."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from mercato.access.dependencies import idempotent, requires
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.earnings import service
from mercato.earnings.errors import PayoutAlreadyDecided, PayoutNotFound
from mercato.earnings.schemas import (
    EarningsMovement,
    EarningsRead,
    PayoutCreate,
    PayoutRead,
    PayoutReject,
    PayoutStatus,
)
from mercato.kit.money import Money, SignedMoney
from mercato.kit.pagination import (
    CursorParam,
    Limit,
    Total,
    created_cursor,
    decode_cursor,
    keyset_page,
)
from mercato.kit.schemas import Page, Slug
from mercato.ledger.errors import InsufficientFunds
from mercato.platform.routing import (
    ReadSession,
    RuntimeDep,
    TransactionalRoute,
    WriteSession,
)
from mercato.publishers.errors import PublisherNotFound

router = APIRouter(route_class=TransactionalRoute, tags=["money"])

PayoutDecider = Annotated[Principal, requires(Permission.payout_decide)]


@router.get("/publishers/{slug}/earnings", response_model=EarningsRead, responses=PublisherNotFound.responses())
async def publisher_earnings(slug: str, actor: Annotated[Principal, requires(Permission.earnings_read)],
                             session: ReadSession, rt: RuntimeDep, cursor: CursorParam = None,
                             limit: Limit = 20) -> EarningsRead:
    """The publisher's earnings (members of the publisher, admins): what is available for a
    payout, pending payouts, totals, and the earnings account's movements (newest first,
    paged with `cursor`). Another publisher's earnings answer 404."""
    publisher = await service.publisher_for(session, actor=actor, slug=slug, permission=Permission.earnings_read)
    currency = rt.settings.currency
    totals = await service.summary(session, publisher_id=publisher.id)
    rows = await service.movements(session, publisher_id=publisher.id, after=decode_cursor(cursor), limit=limit + 1)
    page, next_cursor = keyset_page(rows, limit, lambda row: created_cursor(row[0]))
    return EarningsRead(
        publisher=publisher.slug, available=SignedMoney(amount=totals.available, currency=currency),
        pending_payouts=Money(amount=totals.pending_payouts, currency=currency),
        paid_out=Money(amount=totals.paid_out, currency=currency),
        total_earned=Money(amount=totals.total_earned, currency=currency),
        total_refunded=Money(amount=totals.total_refunded, currency=currency),
        movements=Page[EarningsMovement](
            items=[EarningsMovement(id=entry.id, transaction_id=entry.transaction_id, kind=transaction.kind,
                                    amount=SignedMoney(amount=entry.amount, currency=currency),
                                    balance_after=SignedMoney(amount=entry.balance_after, currency=currency),
                                    memo=transaction.memo, order_id=transaction.order_id,
                                    refund_id=transaction.refund_id, payout_id=transaction.payout_id,
                                    created_at=entry.created_at)
                   for entry, transaction in page],
            next_cursor=next_cursor))


@router.post("/publishers/{slug}/payouts", status_code=201, response_model=PayoutRead,
             responses=PublisherNotFound.responses(InsufficientFunds))
async def request_payout(slug: str, body: PayoutCreate,
                         actor: Annotated[Principal, requires(Permission.payout_request)],
                         _key: Annotated[str | None, idempotent(required=True)], session: WriteSession,
                         rt: RuntimeDep) -> PayoutRead:
    """Request a payout of `amount` (minor units of the store currency) from the available
    earnings; an admin decides it. Needs an `Idempotency-Key`. More than is available
    answers 409 `insufficient_funds`."""
    publisher = await service.publisher_for(session, actor=actor, slug=slug, permission=Permission.payout_request)
    payout = await service.request_payout(session, actor=actor, publisher=publisher, amount=body.amount,
                                          currency=rt.settings.currency)
    return PayoutRead.from_model(payout, publisher=publisher.slug)


@router.get("/admin/payouts", response_model=Page[PayoutRead], responses=PublisherNotFound.responses())
async def list_payouts(actor: PayoutDecider, session: ReadSession,
                       status: Annotated[PayoutStatus | None, Query(description="Only payouts in this state.")] = None,
                       publisher: Annotated[Slug | None, Query(description="Only this publisher's payouts.")] = None,
                       cursor: CursorParam = None, limit: Limit = 20, total: Total = False) -> Page[PayoutRead]:
    """Payouts of every publisher, newest first (`status=requested`: the ones to decide)."""
    rows, count = await service.search(session, publisher=publisher, status=status, after=decode_cursor(cursor),
                                       limit=limit + 1, with_total=total)
    page, next_cursor = keyset_page(rows, limit)
    slugs = await service.slugs_of(session, {p.publisher_id for p in page})
    return Page[PayoutRead](items=[PayoutRead.from_model(p, publisher=slugs[p.publisher_id]) for p in page],
                            total=count, next_cursor=next_cursor)


@router.post("/admin/payouts/{payout_id}/approve", response_model=PayoutRead,
             responses=PayoutNotFound.responses(PayoutAlreadyDecided))
async def approve_payout(payout_id: uuid.UUID, actor: PayoutDecider, session: WriteSession) -> PayoutRead:
    """Approve a requested payout, audited: the amount leaves the store
    (`payouts_pending → provider_clearing:payouts`) and the publisher's members are told.
    A payout decided before answers 409 `invalid_transition`."""
    payout = await service.approve(session, actor=actor, payout_id=payout_id)
    slugs = await service.slugs_of(session, {payout.publisher_id})
    return PayoutRead.from_model(payout, publisher=slugs[payout.publisher_id])


@router.post("/admin/payouts/{payout_id}/reject", response_model=PayoutRead,
             responses=PayoutNotFound.responses(PayoutAlreadyDecided))
async def reject_payout(payout_id: uuid.UUID, body: PayoutReject, actor: PayoutDecider,
                        session: WriteSession) -> PayoutRead:
    """Reject a requested payout with a reason, audited: the amount goes back to the
    publisher's available earnings and its members are told. A payout decided before
    answers 409 `invalid_transition`."""
    payout = await service.reject(session, actor=actor, payout_id=payout_id, reason=body.reason)
    slugs = await service.slugs_of(session, {payout.publisher_id})
    return PayoutRead.from_model(payout, publisher=slugs[payout.publisher_id])
