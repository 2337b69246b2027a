"""The money side of an approved refund (DOMAIN.md saga: ``refund.approved`` → credit the
buyer, revoke the entitlement, debit the publisher's earnings). One subscriber does all
three in one transaction so a refund is never half-settled; the ledger posting is
idempotent by reference and the refund's approved → completed step is guarded."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus.events import CloudEvent
from mercato.bus.registry import subscribe
from mercato.refunds import service
from mercato.refunds.events import RefundApproved


@subscribe(RefundApproved, name="refunds.settle")
async def settle(session: AsyncSession, event: CloudEvent[RefundApproved]) -> None:
    await service.settle(session, refund_id=event.data.refund_id)
