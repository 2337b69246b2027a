"""Publisher earnings and payouts (M7; DOMAIN.md "Ledger").

Completion credits ``publisher_earnings:<publisher>`` (``wallet.service.settle_order``); a
refund after completion debits it (``reverse_sale``). A payout request moves the amount
``publisher_earnings → payouts_pending`` (reference ``payout:<id>``); approval pays it out
of the store, ``payouts_pending → provider_clearing:payouts`` (``payout-paid:<id>``);
rejection gives it back, ``payouts_pending → publisher_earnings`` (``payout-rejected:<id>``).
Each posting joins the transaction that changes the payout, with its event and audit row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.audit.actions import AuditAction
from mercato.audit.service import record as audit
from mercato.bus.events import CloudEvent
from mercato.bus.outbox import publish
from mercato.earnings import repository
from mercato.earnings.errors import PayoutAlreadyDecided, PayoutNotFound
from mercato.kit.clock import utcnow
from mercato.kit.errors import found_or_raise
from mercato.ledger import accounts
from mercato.ledger import service as ledger
from mercato.ledger.errors import InsufficientFunds
from mercato.models import LedgerEntry, LedgerTransaction, Payout, Publisher
from mercato.publishers import service as publishers
from mercato.publishers.errors import PublisherNotFound

# Money leaving the store to publishers: what the payout provider (a bank transfer, …) owes out.
PAYOUTS_CLEARING = accounts.provider_clearing("payouts")


@dataclass(frozen=True)
class EarningsSummary:
    available: int        # the earnings balance: what may be paid out (negative after refunds of paid-out sales)
    pending_payouts: int  # requested, not yet decided
    paid_out: int         # approved payouts, all time
    total_earned: int     # sales after commission, all time
    total_refunded: int   # given back for refunds after completion, all time


class _Overdrawn(Exception):
    """The payout would take the earnings below zero: undo the posting."""


async def publisher_for(session: AsyncSession, *, actor: Principal, slug: str, permission: Permission) -> Publisher:
    """The publisher, when the actor holds ``permission`` for it (``any``, or ``own`` as a
    member); 404 otherwise, as for a publisher that does not exist: another publisher's
    money is nobody else's business."""
    publisher = await publishers.get(session, slug)
    if await publishers.acts_for(session, actor, permission, publisher):
        return publisher
    raise PublisherNotFound(f"There is no publisher {slug!r} you are a member of.")


async def summary(session: AsyncSession, *, publisher_id: uuid.UUID) -> EarningsSummary:
    earnings = await ledger.account(session, accounts.publisher_earnings(publisher_id))
    pending = await ledger.account(session, accounts.payouts_pending(publisher_id))
    earned = await ledger.sums_by_kind(session, earnings.id) if earnings else {}
    paid = await ledger.sums_by_kind(session, pending.id) if pending else {}
    return EarningsSummary(available=earnings.balance if earnings else 0,
                           pending_payouts=pending.balance if pending else 0,
                           paid_out=-paid.get("payout_paid", 0), total_earned=earned.get("settlement", 0),
                           total_refunded=-earned.get("refund", 0))


async def movements(session: AsyncSession, *, publisher_id: uuid.UUID, after: tuple[datetime, uuid.UUID] | None,
                    limit: int) -> list[tuple[LedgerEntry, LedgerTransaction]]:
    """The earnings account's entries, newest first (nothing before the first sale)."""
    account = await ledger.account(session, accounts.publisher_earnings(publisher_id))
    if account is None:
        return []
    return await ledger.entries_of(session, account.id, after=after, limit=limit)


def _event_data(payout: Payout, **extra: object) -> dict[str, object]:
    return {"payout_id": str(payout.id), "publisher_id": str(payout.publisher_id), "amount": payout.amount,
            "currency": payout.currency, **extra}


def _audited(payout: Payout) -> dict[str, object]:
    return {"publisher_id": payout.publisher_id, "amount": payout.amount, "currency": payout.currency,
            "status": payout.status, "decision_reason": payout.decision_reason}


async def request_payout(session: AsyncSession, *, actor: Principal, publisher: Publisher, amount: int,
                         currency: str) -> Payout:
    """Set ``amount`` of the available earnings aside for a payout. 409
    ``insufficient_funds`` (nothing changes) when it is more than the earnings hold now;
    concurrent requests never take more than that between them."""
    payout = Payout(id=uuid.uuid4(), publisher_id=publisher.id, amount=amount, currency=currency,
                    status="requested", requested_by=actor.user_id)
    earnings_ref = accounts.publisher_earnings(publisher.id)
    try:
        async with session.begin_nested():
            await repository.add(session, payout)
            posted = await ledger.post(session, kind="payout_request", reference=f"payout:{payout.id}",
                                       currency=currency, memo="Payout requested", payout_id=payout.id,
                                       legs=ledger.transfer(earnings_ref, accounts.payouts_pending(publisher.id),
                                                            amount))
            # Earnings may go negative (a refund after a payout), so the ledger does not refuse
            # this leg: the balance the guarded UPDATE returned decides. That UPDATE holds the
            # account's row until commit, so a concurrent request sees this one's result.
            earnings = await ledger.account(session, earnings_ref)
            assert earnings is not None
            entries = await ledger.entries_of_transaction(session, posted.transaction.id)
            if any(e.account_id == earnings.id and e.balance_after < 0 for e in entries):
                raise _Overdrawn
    except _Overdrawn:
        available = await ledger.balance(session, earnings_ref)
        raise InsufficientFunds(f"The earnings of {publisher.slug!r} hold {max(available, 0)} {currency} "
                                f"(minor units); a payout of {amount} is more than that.") from None
    await publish(session, CloudEvent(type="payout.requested", subject=str(payout.id),
                                      data=_event_data(payout, requested_by=str(actor.user_id))))
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.payout_request,
                resource_type="payout", resource_id=payout.id, after=_audited(payout))
    return payout


async def get(session: AsyncSession, payout_id: uuid.UUID) -> Payout:
    return found_or_raise(await repository.by_id(session, payout_id),
                          PayoutNotFound, f"There is no payout {payout_id}.")


async def _decide(session: AsyncSession, *, actor: Principal, payout_id: uuid.UUID, status: str,
                  reason: str | None) -> Payout:
    payout = await get(session, payout_id)
    if not await repository.decide(session, payout.id, status=status, decided_by=actor.user_id, at=utcnow(),
                                   reason=reason):
        await session.refresh(payout)
        raise PayoutAlreadyDecided(f"The payout {payout.id} was {payout.status} already"
                                   f"{f' on {payout.decided_at:%Y-%m-%d}' if payout.decided_at else ''}.")
    return payout


async def approve(session: AsyncSession, *, actor: Principal, payout_id: uuid.UUID) -> Payout:
    """Pay the payout out of the store: ``payouts_pending → provider_clearing:payouts``."""
    payout = await _decide(session, actor=actor, payout_id=payout_id, status="approved", reason=None)
    await ledger.post(session, kind="payout_paid", reference=f"payout-paid:{payout.id}", currency=payout.currency,
                      legs=ledger.transfer(accounts.payouts_pending(payout.publisher_id), PAYOUTS_CLEARING,
                                           payout.amount),
                      memo="Payout paid", payout_id=payout.id)
    await publish(session, CloudEvent(type="payout.approved", subject=str(payout.id),
                                      data=_event_data(payout, decided_by=str(actor.user_id))))
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.payout_approve,
                resource_type="payout", resource_id=payout.id, before={"status": "requested"}, after=_audited(payout))
    return payout


async def reject(session: AsyncSession, *, actor: Principal, payout_id: uuid.UUID, reason: str) -> Payout:
    """Give the amount back to the earnings: ``payouts_pending → publisher_earnings``."""
    payout = await _decide(session, actor=actor, payout_id=payout_id, status="rejected", reason=reason)
    await ledger.post(session, kind="payout_rejected", reference=f"payout-rejected:{payout.id}",
                      currency=payout.currency,
                      legs=ledger.transfer(accounts.payouts_pending(payout.publisher_id),
                                           accounts.publisher_earnings(payout.publisher_id), payout.amount),
                      memo="Payout rejected", payout_id=payout.id)
    await publish(session, CloudEvent(type="payout.rejected", subject=str(payout.id),
                                      data=_event_data(payout, decided_by=str(actor.user_id), reason=reason)))
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.payout_reject,
                resource_type="payout", resource_id=payout.id, before={"status": "requested"}, after=_audited(payout))
    return payout


async def search(session: AsyncSession, *, publisher: str | None, status: str | None,
                 after: tuple[datetime, uuid.UUID] | None, limit: int,
                 with_total: bool) -> tuple[list[Payout], int | None]:
    publisher_id = (await publishers.get(session, publisher)).id if publisher else None
    return await repository.search(session, publisher_id=publisher_id, status=status, after=after, limit=limit,
                                   with_total=with_total)


async def slugs_of(session: AsyncSession, publisher_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    return {publisher_id: (await publishers.get_by_id(session, publisher_id)).slug for publisher_id in publisher_ids}
