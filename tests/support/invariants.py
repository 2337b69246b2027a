"""The money invariants of QUALITY.md, checked straight on the database after money tests.

INV-1 every ledger transaction's entries sum to zero, and so do all entries; INV-2 no
account that may not go negative is below zero; INV-3 each stored balance equals the sum
of its entries (and the last entry's ``balance_after``); INV-5 no stock below zero.
"""

from __future__ import annotations

from sqlalchemy import func, select

from mercato.kit.db import Database
from mercato.models import LedgerAccount, LedgerEntry, Listing


async def assert_money_invariants(db: Database) -> None:
    async with db.read_session() as session:
        unbalanced = (await session.execute(
            select(LedgerEntry.transaction_id, func.sum(LedgerEntry.amount))
            .group_by(LedgerEntry.transaction_id).having(func.sum(LedgerEntry.amount) != 0))).all()
        assert unbalanced == [], f"INV-1: unbalanced ledger transactions {unbalanced}"
        overall = await session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0)))
        assert overall == 0, f"INV-1: all entries sum to {overall}"
        negative = (await session.execute(select(LedgerAccount.key, LedgerAccount.balance).where(
            LedgerAccount.balance < 0, LedgerAccount.may_go_negative.is_(False)))).all()
        assert negative == [], f"INV-2: accounts below zero {negative}"
        sums = dict((await session.execute(select(LedgerEntry.account_id, func.sum(LedgerEntry.amount))
                                            .group_by(LedgerEntry.account_id))).all())
        for account in await session.scalars(select(LedgerAccount)):
            assert account.balance == int(sums.get(account.id, 0)), \
                f"INV-3: {account.key} stores {account.balance}, its entries sum to {sums.get(account.id, 0)}"
        oversold = (await session.execute(select(Listing.slug, Listing.stock).where(Listing.stock < 0))).all()
        assert oversold == [], f"INV-5: stock below zero {oversold}"


async def assert_entitlements_follow_orders(db: Database) -> None:
    """INV-4 (second half): every digital line of a completed order that is not fully
    refunded has an active entitlement; one per (user, idempotency key) is the table's
    unique constraint."""
    from mercato.models import Entitlement, Order, OrderLine

    async with db.read_session() as session:
        missing = (await session.execute(
            select(Order.id, OrderLine.listing_id)
            .join(OrderLine, OrderLine.order_id == Order.id)
            .outerjoin(Entitlement, (Entitlement.user_id == Order.user_id)
                       & (Entitlement.listing_id == OrderLine.listing_id) & Entitlement.revoked_at.is_(None))
            .where(Order.status.in_(("completed", "partially_refunded")), OrderLine.delivery == "digital",
                   OrderLine.refunded_quantity < OrderLine.quantity, Entitlement.id.is_(None)))).all()
        assert missing == [], f"INV-4: paid, unrefunded lines without an entitlement {missing}"


async def assert_quiescent(db: Database) -> None:
    """INV-7: nothing owed by the bus, no unpaid order left open past its deadline."""
    from datetime import timedelta

    from mercato.bus.registry import REGISTRY
    from mercato.bus.service import owes_anything
    from mercato.kit.clock import utcnow
    from mercato.models import EventDelivery, Order

    assert not await owes_anything(db, REGISTRY), "INV-7: the bus still owes work (an event unrelayed or unobserved)"
    async with db.read_session() as session:
        owed = (await session.execute(select(EventDelivery.subscriber, EventDelivery.state)
                                      .where(EventDelivery.state == "pending"))).all()
        assert owed == [], f"INV-7: deliveries still pending {owed}"
        late = (await session.execute(select(Order.id, Order.status).where(
            Order.status.in_(("created", "awaiting_payment")),
            Order.expires_at < utcnow() - timedelta(seconds=30)))).all()
        assert late == [], f"INV-7: unpaid orders open past their deadline {late}"
