"""What a paid order hands its buyer (the checkout saga's grant, DOMAIN.md "Saga"): an
entitlement to every line's listing, each line with a licence key when its listing has a
key pool, or nothing at all.

The orders module drives this step because it calls both the library (entitlements) and
the licences module (key pools), and neither of them knows about orders.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.library import service as library
from mercato.licences import service as licences
from mercato.licences.errors import KeyPoolEmpty, OrderLineNotFound
from mercato.models import LicenceKey
from mercato.orders import repository


async def assign_key(session: AsyncSession, *, listing_id: uuid.UUID, order_line_id: uuid.UUID) -> LicenceKey | None:
    """Hand one free key of the listing's pool to the order line, in the caller's transaction.

    None when the listing has no key pool (no key was ever uploaded). The same order line
    always gets the same key (a repeated call returns it). Raises :class:`KeyPoolEmpty`
    when the pool has keys but none is free, changing nothing. Concurrent callers never
    get the same key. ``order_lines.licence_key_id`` is set to the key.
    """
    held = await licences.key_of_line(session, order_line_id)
    if held is not None:
        return held
    if not await licences.has_pool(session, listing_id):
        return None
    if await repository.listing_of_line(session, order_line_id) != listing_id:
        raise OrderLineNotFound(f"There is no order line {order_line_id} for listing {listing_id}.")
    key = await licences.take_key(session, listing_id=listing_id, order_line_id=order_line_id)
    await repository.link_licence_key(session, order_line_id, key.id)
    return key


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
    held = {line.listing_id for line in lines
            if await library.is_entitled(session, user_id=user_id, listing_id=line.listing_id)}
    for line in lines:
        if line.delivery == "digital" and line.listing_id in held:
            return GrantRefused("already_owned", f"The buyer already owns listing {line.listing_id}.")
    try:
        async with session.begin_nested():  # a pool running dry gives back the keys taken so far
            for line in lines:
                try:
                    await assign_key(session, listing_id=line.listing_id, order_line_id=line.line_id)
                except KeyPoolEmpty as exc:
                    raise _PoolEmpty(exc.detail) from None
            for line in lines:
                await library.grant(session, user_id=user_id, listing_id=line.listing_id, source="purchase",
                                    order_id=order_id)
    except _PoolEmpty as empty:
        return GrantRefused("licence_keys_exhausted", empty.detail)
    if all(line.listing_id in held for line in lines):
        await library.announce_for_order(session, user_id=user_id, listing_id=lines[0].listing_id, order_id=order_id)
    return None
