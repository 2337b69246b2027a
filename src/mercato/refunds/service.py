"""Refunds (PRODUCT M6, DOMAIN.md "Refund"): ``requested → approved → completed``,
``requested → rejected``.

- Only completed (or partly refunded) orders are refunded, inside the order's refund
  window (the policy frozen on the order at checkout). Before completion the buyer cancels.
- A refund names lines and units (partial refunds of multi-item orders), or all that is
  left. Its amount is the units' share of what was paid for the line, in integers: the
  k-th unit of a line of total T and quantity n is worth ⌊T·k/n⌋ − ⌊T·(k−1)/n⌋, so all
  refunds of a line add up to exactly T.
- Automatic approval: inside the window, digital lines only, each downloaded at most
  ``refund_auto_max_downloads`` times (policy). Physical goods and everything else wait
  for the listing's publisher (members of every publisher in the refund) or an admin.
- Approval takes the units with a guarded statement (never more than were bought, under
  any concurrency: "nobody refunds twice") and publishes ``refund.approved``; its
  handler moves the money (the sale reversed: publisher earnings and the commission back
  to the buyer's wallet), revokes entitlements of fully refunded digital lines, and
  completes the refund, all in one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.audit.actions import AuditAction
from mercato.audit.service import record as audit
from mercato.audit.service import record_system as audit_system
from mercato.bus.events import CloudEvent
from mercato.bus.outbox import publish
from mercato.kit.clock import utcnow
from mercato.kit.errors import found_or_raise
from mercato.kit.money import format_money
from mercato.library import service as library
from mercato.models import Order, OrderLine, Refund, RefundLine
from mercato.notifications import service as notifications
from mercato.policies import service as policies
from mercato.publishers import service as publishers
from mercato.refunds import repository
from mercato.refunds.errors import (
    AlreadyRefunded,
    InvalidRefundLines,
    OrderNotFound,
    OrderNotRefundable,
    RefundAlreadyDecided,
    RefundNotFound,
    RefundWindowClosed,
)
from mercato.wallet import service as wallet
from mercato.wallet.service import Split


@dataclass(frozen=True)
class WantedLine:
    line_id: uuid.UUID
    quantity: int


def units_value(line: OrderLine, *, already: int, quantity: int) -> int:
    """What ``quantity`` more units of the line are worth after ``already`` were refunded."""
    return line.total * (already + quantity) // line.quantity - line.total * already // line.quantity


async def request(session: AsyncSession, *, actor: Principal, order_id: uuid.UUID,
                  wanted: Sequence[WantedLine] | None, reason: str) -> Refund:
    order = found_or_raise(await repository.order(session, order_id, buyer_id=actor.user_id),
                           OrderNotFound, f"You have no order {order_id}.")
    if order.status not in repository.REFUNDABLE_ORDER or order.completed_at is None:
        raise OrderNotRefundable(f"Order {order.id} is {order.status}; only completed orders are refunded "
                                 "(cancel it instead while it is unpaid).")
    closes = order.completed_at + timedelta(days=order.refund_window_days)
    now = utcnow()
    if now > closes:
        raise RefundWindowClosed(f"Refunds for order {order.id} closed on {closes:%Y-%m-%d %H:%M} UTC.")
    lines = {line.id: line for line in await repository.lines_of(session, order.id)}
    chosen = _chosen(lines, wanted)
    refund = Refund(id=uuid.uuid4(), order_id=order.id, user_id=order.user_id, status="requested", reason=reason,
                    amount=0, currency=order.currency, automatic=False, created_at=now, updated_at=now)
    refund_lines = [RefundLine(id=uuid.uuid4(), refund_id=refund.id, order_line_id=line.id, quantity=quantity,
                               amount=units_value(line, already=line.refunded_quantity, quantity=quantity))
                    for line, quantity in chosen]
    refund.amount = sum(rl.amount for rl in refund_lines)
    if refund.amount <= 0:
        raise InvalidRefundLines("Those units were free: there is nothing to refund.")
    repository.add(session, refund, refund_lines)
    await session.flush()
    await publish(session, CloudEvent(type="refund.requested", subject=str(refund.id), data=_event_data(refund)))
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.refund_request,
                resource_type="refund", resource_id=refund.id,
                after={"order_id": order.id, "amount": refund.amount, "reason": reason,
                       "lines": [{"line_id": rl.order_line_id, "quantity": rl.quantity} for rl in refund_lines]})
    if await _within_automatic_policy(session, order, chosen):
        await _approve(session, refund, by=None, reason="Inside the refund policy", automatic=True)
    else:
        await _tell_publishers(session, refund, chosen)
    return refund


def _chosen(lines: dict[uuid.UUID, OrderLine], wanted: Sequence[WantedLine] | None) -> list[tuple[OrderLine, int]]:
    if wanted is None:  # everything not refunded yet
        chosen = [(line, line.quantity - line.refunded_quantity) for line in lines.values()
                  if line.quantity > line.refunded_quantity]
        if not chosen:
            raise AlreadyRefunded("Everything in this order has been refunded already.")
        return chosen
    seen: set[uuid.UUID] = set()
    chosen = []
    for item in wanted:
        line = lines.get(item.line_id)
        if line is None or item.line_id in seen:
            raise InvalidRefundLines(f"Line {item.line_id} is not in this order, or is named twice.")
        seen.add(item.line_id)
        if line.refunded_quantity + item.quantity > line.quantity:
            raise AlreadyRefunded(f"Line {line.id} has {line.quantity - line.refunded_quantity} unit(s) left "
                                  f"to refund, not {item.quantity}.")
        chosen.append((line, item.quantity))
    return chosen


async def _within_automatic_policy(session: AsyncSession, order: Order, chosen: list[tuple[OrderLine, int]]) -> bool:
    limit = (await policies.current(session)).refund_auto_max_downloads
    for line, _ in chosen:
        if line.delivery != "digital":
            return False
        entitlement = await library.entitlement_of(session, user_id=order.user_id, listing_id=line.listing_id)
        if entitlement is not None and entitlement.download_count > limit:
            return False
    return True


async def _tell_publishers(session: AsyncSession, refund: Refund, chosen: list[tuple[OrderLine, int]]) -> None:
    """Each involved publisher's members are told, with a link to the order in that publisher's
    console (WEB.md: links point at pages; a member of two involved publishers is told once)."""
    titles = ", ".join(sorted({line.title for line, _ in chosen}))
    for publisher_id in sorted({line.publisher_id for line, _ in chosen}, key=str):
        publisher = await publishers.get_by_id(session, publisher_id)
        await notifications.notify(session, event_id=refund.id,
                                   user_ids=await publishers.member_ids(session, publisher_id),
                                   kind="refund.requested", title=f"Refund requested: {titles}", body=refund.reason,
                                   link=f"/console/publisher/{publisher.slug}/orders?status=#o-{refund.order_id}",
                                   data={"refund_id": str(refund.id), "order_id": str(refund.order_id)})


async def decide(session: AsyncSession, *, actor: Principal, refund_id: uuid.UUID, approve: bool,
                 reason: str | None) -> Refund:
    refund = await repository.get(session, refund_id)
    if refund is None or not await _may_decide(session, actor, refund):
        raise RefundNotFound(f"There is no refund {refund_id} you can decide.")
    if refund.status != "requested":
        raise RefundAlreadyDecided(f"Refund {refund.id} is {refund.status} already.")
    if approve:
        await _approve(session, refund, by=actor, reason=reason, automatic=False)
    else:
        if not await repository.decide(session, refund.id, status="rejected", by=actor.user_id, at=utcnow(),
                                       reason=reason):
            raise RefundAlreadyDecided(f"Refund {refund.id} was decided meanwhile.")
        await session.refresh(refund)
        await publish(session, CloudEvent(type="refund.rejected", subject=str(refund.id), data=_event_data(refund)))
        await _tell_buyer(session, refund, approved=False)
    await audit(session, actor_id=actor.user_id, actor_email=actor.email,
                action=AuditAction.refund_approve if approve else AuditAction.refund_reject, resource_type="refund",
                resource_id=refund.id, before={"status": "requested"},
                after={"status": refund.status, "reason": reason, "amount": refund.amount})
    return refund


async def _may_decide(session: AsyncSession, actor: Principal, refund: Refund) -> bool:
    if actor.has_any(Permission.refund_decide):
        return True
    if not actor.has(Permission.refund_decide):
        return False
    mine = set(await publishers.publisher_ids_for(session, actor, Permission.refund_decide))
    involved = await repository.publishers_of(session, refund.id)
    return bool(involved) and involved <= mine


async def _approve(session: AsyncSession, refund: Refund, *, by: Principal | None, reason: str | None,
                   automatic: bool) -> None:
    """Take the units (guarded) at today's values, then approve; the handler moves the money."""
    lines = {line.id: line for line in await repository.lines_of(session, refund.order_id)}
    total = 0
    for refund_line in await repository.refund_lines(session, refund.id):
        line = lines[refund_line.order_line_id]
        await session.refresh(line)
        amount = units_value(line, already=line.refunded_quantity, quantity=refund_line.quantity)
        if not await repository.take_units(session, line.id, quantity=refund_line.quantity, amount=amount):
            raise AlreadyRefunded(f"Line {line.id} has been refunded meanwhile.")
        if amount != refund_line.amount:
            await repository.set_line_amount(session, refund_line.id, amount)
        total += amount
    now = utcnow()
    if not await repository.decide(session, refund.id, status="approved", by=by.user_id if by else None, at=now,
                                   reason=reason, automatic=automatic):
        raise RefundAlreadyDecided(f"Refund {refund.id} was decided meanwhile.")
    if total != refund.amount:
        await repository.set_amount(session, refund.id, total)
    await repository.add_refunded_to_order(session, refund.order_id, total, at=now)
    await session.refresh(refund)
    await publish(session, CloudEvent(type="refund.approved", subject=str(refund.id), data=_event_data(refund)))
    if by is None:  # inside the policy: nobody decided, the store did
        await audit_system(session, action=AuditAction.refund_approve, resource_type="refund", resource_id=refund.id,
                           before={"status": "requested"},
                           after={"status": "approved", "automatic": True, "amount": refund.amount, "reason": reason})
    await _tell_buyer(session, refund, approved=True)


async def _tell_buyer(session: AsyncSession, refund: Refund, *, approved: bool) -> None:
    money = format_money(refund.amount, refund.currency)
    title = f"Your refund of {money} was approved" if approved else "Your refund request was declined"
    body = ("The money is back in your wallet." if approved
            else (refund.decision_reason or "The publisher declined it."))
    await notifications.notify(session, event_id=uuid.uuid5(refund.id, refund.status), user_ids=[refund.user_id],
                               kind="refund.approved" if approved else "refund.rejected", title=title, body=body,
                               link=f"/orders/{refund.order_id}",
                               data={"refund_id": str(refund.id), "order_id": str(refund.order_id)})


async def settle(session: AsyncSession, *, refund_id: uuid.UUID) -> bool:
    """The reaction to ``refund.approved``: move the money, revoke what is fully refunded,
    complete the refund. False when it was done before (a redelivery)."""
    refund = await repository.get(session, refund_id)
    if refund is None or refund.status != "approved":
        return False
    order = await repository.order(session, refund.order_id)
    assert order is not None
    lines = {line.id: line for line in await repository.lines_of(session, order.id)}
    refund_lines = await repository.refund_lines(session, refund.id)
    line_ids = [rl.order_line_id for rl in refund_lines]
    await repository.lock_lines(session, line_ids)  # settlements of one line take turns
    before = await repository.reversed_before(session, line_ids)
    await wallet.reverse_sale(session, refund_id=refund.id, order_id=order.id, user_id=order.user_id,
                              splits=[Split(lines[rl.order_line_id].publisher_id, rl.amount,
                                            before.get(rl.order_line_id, 0)) for rl in refund_lines],
                              commission_bps=order.commission_bps, currency=order.currency)
    for refund_line in refund_lines:
        line = lines[refund_line.order_line_id]
        if line.delivery == "digital" and line.refunded_quantity >= line.quantity:
            await library.revoke(session, user_id=order.user_id, listing_id=line.listing_id,
                                 reason=f"Refunded (refund {refund.id})")
    if not await repository.complete(session, refund.id, at=utcnow()):
        return False
    await session.refresh(refund)
    await audit_system(session, action=AuditAction.refund_complete, resource_type="refund", resource_id=refund.id,
                       before={"status": "approved"},
                       after={"status": refund.status, "amount": refund.amount, "order_id": refund.order_id})
    await publish(session, CloudEvent(type="refund.completed", subject=str(refund.id), data=_event_data(refund)))
    return True


async def get_visible(session: AsyncSession, *, actor: Principal, refund_id: uuid.UUID) -> Refund:
    refund = await repository.get(session, refund_id)
    if refund is None or not (refund.user_id == actor.user_id or await _may_decide(session, actor, refund)):
        raise RefundNotFound(f"There is no refund {refund_id}.")
    return refund


async def visible(session: AsyncSession, *, actor: Principal, status: str | None, order_id: uuid.UUID | None,
                  after, limit: int) -> list[Refund]:  # type: ignore[no-untyped-def]
    everything = actor.has_any(Permission.refund_decide)
    mine = [] if everything or not actor.has(Permission.refund_decide) else \
        await publishers.publisher_ids_for(session, actor, Permission.refund_decide)
    return await repository.visible(session, user_id=actor.user_id, publisher_ids=mine, everything=everything,
                                    status=status, order_id=order_id, after=after, limit=limit)


async def lines_of(session: AsyncSession, refund_id: uuid.UUID) -> list[RefundLine]:
    return await repository.refund_lines(session, refund_id)


def _event_data(refund: Refund) -> dict[str, object]:
    return {"refund_id": str(refund.id), "order_id": str(refund.order_id), "user_id": str(refund.user_id),
            "amount": refund.amount, "currency": refund.currency, "status": refund.status,
            "automatic": refund.automatic}
