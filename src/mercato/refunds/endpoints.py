"""Refunds (M6): the buyer asks; the policy, the publisher or an admin decides."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.dependencies import idempotent, requires
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.kit.money import Money
from mercato.kit.pagination import CursorParam, Limit, decode_cursor, keyset_page
from mercato.kit.schemas import Page
from mercato.ledger.errors import InsufficientFunds
from mercato.models import Refund
from mercato.platform.routing import ReadSession, TransactionalRoute, WriteSession
from mercato.refunds import service
from mercato.refunds.errors import (
    AlreadyRefunded,
    InvalidRefundLines,
    OrderNotFound,
    OrderNotRefundable,
    RefundAlreadyDecided,
    RefundNotFound,
    RefundWindowClosed,
)
from mercato.refunds.schemas import RefundCreate, RefundDecision, RefundLineRead, RefundRead, RefundRejection

router = APIRouter(route_class=TransactionalRoute, tags=["money"])

Requester = Annotated[Principal, requires(Permission.refund_request)]
Decider = Annotated[Principal, requires(Permission.refund_decide)]


async def _read(session: AsyncSession, refund: Refund) -> RefundRead:
    lines = await service.lines_of(session, refund.id)
    return RefundRead(id=refund.id, order_id=refund.order_id, user_id=refund.user_id, status=refund.status,  # type: ignore[arg-type]
                      amount=Money(amount=refund.amount, currency=refund.currency), reason=refund.reason,
                      automatic=refund.automatic, decided_at=refund.decided_at, decision_reason=refund.decision_reason,
                      lines=[RefundLineRead(line_id=line.order_line_id, quantity=line.quantity,
                                            amount=Money(amount=line.amount, currency=refund.currency))
                             for line in lines],
                      created_at=refund.created_at, updated_at=refund.updated_at)


@router.post("/orders/{order_id}/refunds", status_code=201, response_model=RefundRead,
             responses=OrderNotFound.responses(OrderNotRefundable, RefundWindowClosed, InvalidRefundLines))
async def request_refund(order_id: uuid.UUID, body: RefundCreate, actor: Requester,
                         _key: Annotated[str, idempotent(required=True)], session: WriteSession) -> RefundRead:
    """Ask for your money back for a completed order, within its refund window: named lines
    and units, or everything not refunded yet. Inside the refund policy (digital items not
    downloaded more than the policy allows) it is approved at once and the money is back
    in your wallet within moments; otherwise the publisher or an admin decides.
    Requires an `Idempotency-Key`."""
    wanted = None if body.lines is None else [service.WantedLine(line.line_id, line.quantity) for line in body.lines]
    refund = await service.request(session, actor=actor, order_id=order_id, wanted=wanted, reason=body.reason)
    return await _read(session, refund)


@router.get("/refunds", response_model=Page[RefundRead])
async def list_refunds(actor: Requester, session: ReadSession,
                       status: Literal["requested", "approved", "completed", "rejected"] | None = None,
                       order_id: uuid.UUID | None = None, cursor: CursorParam = None,
                       limit: Limit = 20) -> Page[RefundRead]:
    """Refunds you asked for; for publisher members also those of your publishers' sales
    (filter `status=requested` for the ones waiting on you); for admins every refund."""
    rows = await service.visible(session, actor=actor, status=status, order_id=order_id,
                                 after=decode_cursor(cursor), limit=limit + 1)
    page, next_cursor = keyset_page(rows, limit)
    return Page[RefundRead](items=[await _read(session, refund) for refund in page], next_cursor=next_cursor)


@router.get("/refunds/{refund_id}", response_model=RefundRead, responses=RefundNotFound.responses())
async def get_refund(refund_id: uuid.UUID, actor: Requester, session: ReadSession) -> RefundRead:
    return await _read(session, await service.get_visible(session, actor=actor, refund_id=refund_id))


@router.post("/refunds/{refund_id}/approve", response_model=RefundRead,
             responses=RefundNotFound.responses(RefundAlreadyDecided, AlreadyRefunded, InsufficientFunds))
async def approve_refund(refund_id: uuid.UUID, actor: Decider, session: WriteSession,
                         body: RefundDecision | None = None) -> RefundRead:
    """Approve a requested refund (members of the publisher of every line in it, or admins):
    the money goes back to the buyer's wallet and fully refunded items leave their library."""
    refund = await service.decide(session, actor=actor, refund_id=refund_id, approve=True,
                                  reason=body.reason if body else None)
    return await _read(session, refund)


@router.post("/refunds/{refund_id}/reject", response_model=RefundRead,
             responses=RefundNotFound.responses(RefundAlreadyDecided))
async def reject_refund(refund_id: uuid.UUID, body: RefundRejection, actor: Decider,
                        session: WriteSession) -> RefundRead:
    """Decline a requested refund, with a reason the buyer sees."""
    refund = await service.decide(session, actor=actor, refund_id=refund_id, approve=False, reason=body.reason)
    return await _read(session, refund)
