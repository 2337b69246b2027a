"""The library's part of the order saga (DOMAIN.md "Saga"): a paid digital order
(``order.paid``) or a delivered physical one (``order.delivered``) entitles the buyer to
every listing in it, each line with a licence key when its listing has a key pool.

The outcome is an event either way: ``entitlement.granted`` (one per new entitlement,
written by :func:`service.grant`) or ``entitlement.refused`` (nothing granted), which the
orders and wallet modules compensate (full refund, order ``failed``). The bus records the
handled event in the same transaction, so a redelivery grants and hands out keys once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus.events import CloudEvent
from mercato.bus.outbox import publish
from mercato.bus.registry import subscribe
from mercato.kit.failpoints import failpoint
from mercato.library import repository, service


@dataclass(frozen=True)
class OrderLineToGrant:
    line_id: uuid.UUID
    listing_id: uuid.UUID
    delivery: str  # digital | physical


@dataclass(frozen=True)
class GrantRefused:
    reason: str   # already_owned | licence_keys_exhausted
    detail: str


class _PoolEmpty(Exception):
    def __init__(self, detail: str) -> None:
        self.detail = detail


def lines_of(data: dict[str, Any]) -> list[OrderLineToGrant]:
    return [OrderLineToGrant(uuid.UUID(line["line_id"]), uuid.UUID(line["listing_id"]), line["delivery"])
            for line in data.get("lines", [])]


async def grant_order(session: AsyncSession, *, order_id: uuid.UUID, user_id: uuid.UUID,
                      lines: Sequence[OrderLineToGrant]) -> GrantRefused | None:
    """Entitle the buyer to every line's listing (source ``purchase``), or to none.

    Refused (nothing granted, no key taken) when the buyer already holds a digital line's
    listing (bought twice by two orders in flight at once) or a listing's key pool has no
    key left. A physical line of a listing the buyer holds already is fine: the copy was
    shipped; the existing entitlement stays. When no entitlement was new, the existing one
    is announced again for the order (``entitlement.granted`` with its ``order_id``), so the
    order always learns the outcome.
    """
    from mercato.licences import service as licences
    from mercato.licences.errors import KeyPoolEmpty

    held = {line.listing_id for line in lines
            if await repository.is_active(session, user_id, line.listing_id)}
    for line in lines:
        if line.delivery == "digital" and line.listing_id in held:
            return GrantRefused("already_owned", f"The buyer already owns listing {line.listing_id}.")
    try:
        async with session.begin_nested():  # a pool running dry gives back the keys taken so far
            for line in lines:
                try:
                    await licences.assign_key(session, listing_id=line.listing_id, order_line_id=line.line_id)
                except KeyPoolEmpty as exc:
                    raise _PoolEmpty(exc.detail) from None
            for line in lines:
                await service.grant(session, user_id=user_id, listing_id=line.listing_id, source="purchase",
                                    order_id=order_id)
    except _PoolEmpty as empty:
        return GrantRefused("licence_keys_exhausted", empty.detail)
    if all(line.listing_id in held for line in lines):
        existing = await repository.of_user(session, user_id, lines[0].listing_id)
        if existing is not None:
            await publish(session, CloudEvent(type="entitlement.granted", subject=str(existing.id), data={
                "entitlement_id": str(existing.id), "user_id": str(user_id), "listing_id": str(existing.listing_id),
                "source": existing.source, "order_id": str(order_id)}))
    return None


async def _grant_or_refuse(session: AsyncSession, event: CloudEvent, lines: list[OrderLineToGrant]) -> None:
    data = event.data
    order_id, user_id = uuid.UUID(data["order_id"]), uuid.UUID(data["user_id"])
    refused = await grant_order(session, order_id=order_id, user_id=user_id, lines=lines)
    if refused is not None:
        await publish(session, CloudEvent(type="entitlement.refused", subject=str(order_id), data={
            "order_id": str(order_id), "user_id": str(user_id), "reason": refused.reason, "detail": refused.detail,
            "total": data.get("total"), "currency": data.get("currency")}))
    await failpoint("saga.after_grant")


@subscribe("order.paid", name="library.grant_on_paid")
async def grant_on_paid(session: AsyncSession, event: CloudEvent) -> None:
    """Digital-only orders are entitled once paid; orders with physical lines wait for
    delivery (``order.delivered``) and are entitled whole then."""
    if event.data.get("physical"):
        return
    await _grant_or_refuse(session, event, lines_of(event.data))


@subscribe("order.delivered", name="library.grant_on_delivered")
async def grant_on_delivered(session: AsyncSession, event: CloudEvent) -> None:
    await _grant_or_refuse(session, event, lines_of(event.data))
