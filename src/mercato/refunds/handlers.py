"""The money side of an approved refund (DOMAIN.md saga: ``refund.approved`` → credit the
buyer, revoke the entitlement, debit the publisher's earnings). One subscriber does all
three in one transaction so a refund is never half-settled; the ledger posting is
idempotent by reference and the refund's approved → completed step is guarded."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus.events import CloudEvent
from mercato.bus.registry import subscribe
from mercato.refunds import service


@subscribe("refund.approved", name="refunds.settle")
async def settle(session: AsyncSession, event: CloudEvent) -> None:
    await service.settle(session, refund_id=uuid.UUID(event.data["refund_id"]))
