"""Sales booked for the earnings and payout tests straight through the wallet, the way the
order saga books a completed order (pay in, debit, settle), without a checkout."""

from __future__ import annotations

import uuid

from mercato.app.runtime import Runtime
from mercato.wallet import service as wallet
from mercato.wallet.service import Split
from tests.support.actors import Actor


async def sold(runtime: Runtime, buyer: Actor, publisher: uuid.UUID, price: int,
               commission_bps: int = 2000) -> uuid.UUID:
    """A completed sale as the order saga books it: pay in, debit, settle."""
    order_id = uuid.uuid4()
    async with runtime.db.transaction() as session:
        await wallet.credit_payment(session, payment_id=uuid.uuid4(), user_id=uuid.UUID(buyer.id), provider="sandbox",
                                    amount=price, currency="USD")
        await wallet.debit_order(session, order_id=order_id, user_id=uuid.UUID(buyer.id), amount=price,
                                 currency="USD")
        await wallet.settle_order(session, order_id=order_id, splits=[Split(publisher, price)],
                                  commission_bps=commission_bps, currency="USD")
    return order_id
