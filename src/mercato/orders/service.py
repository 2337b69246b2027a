"""Orders (PRODUCT M3–M5, M9; DOMAIN.md "Order" and "Saga"): what other modules and the
endpoints use of the orders module. The use cases live beside it:

- ``checkout``: creating an order (priced, checked, stock reserved, all or nothing);
- ``saga``: the order's steps when the wallet, a payment provider or the library answered,
  the buyer's ``pay`` of a shortfall, and the expiry of unpaid orders;
- ``fulfilment``: cancel, ship and deliver;
- ``grant``: what a paid order hands its buyer (entitlements, licence keys);
- ``queries``: reading orders;
- ``transitions``: the guarded state changes and the events the three above share.

Every reaction is a guarded transition (``UPDATE … WHERE status IN (…)``), so a repeated
or late event changes nothing twice; ledger postings are idempotent by reference. Stock
goes back, once, in the transition that closes an order that did not ship.

Below: the few writes other modules make on an order's lines (refunds). The grant of a paid
order (entitlements and licence keys) is ``grant``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.kit.metrics import ORDERS, count_on_commit
from mercato.orders import repository
from mercato.orders.checkout import create
from mercato.orders.fulfilment import cancel, deliver, ship
from mercato.orders.queries import (
    counts_since,
    find,
    get_visible,
    lines,
    of_buyer,
    of_publisher,
    present,
    saga_overdue_since,
    status_of,
)
from mercato.orders.saga import (
    complete,
    expire_due,
    fail,
    on_debit_refused,
    on_debited,
    on_payment_succeeded,
    pay,
)

__all__ = [
    "REFUNDABLE", "add_refunded", "cancel", "complete", "counts_since", "create", "deliver", "expire_due", "fail",
    "find", "get_visible", "lines", "lock_lines", "of_buyer",
    "of_publisher", "on_debit_refused", "on_debited", "on_payment_succeeded", "pay", "present",
    "saga_overdue_since", "ship", "status_of", "take_refunded_units",
]

REFUNDABLE = repository.REFUNDABLE


async def lock_lines(session: AsyncSession, line_ids: Iterable[uuid.UUID]) -> None:
    """Hold the lines until the caller's transaction ends (refund settlements of one line
    take turns, so each sees what the ones before it reversed)."""
    await repository.lock_lines(session, line_ids)


async def take_refunded_units(session: AsyncSession, line_id: uuid.UUID, *, quantity: int, amount: int) -> bool:
    """A refund takes ``quantity`` units of the line (worth ``amount``): False, changing
    nothing, when fewer are left unrefunded (a concurrent refund took them)."""
    return await repository.take_refunded_units(session, line_id, quantity=quantity, amount=amount)


async def add_refunded(session: AsyncSession, order_id: uuid.UUID, amount: int, *, at: datetime) -> None:
    """Count ``amount`` more of a completed order as refunded: ``partially_refunded``, or
    ``refunded`` once all of its total is."""
    if await repository.add_refunded(session, order_id, amount, at=at) == "refunded":
        count_on_commit(session, ORDERS.labels("refunded"))

