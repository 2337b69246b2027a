"""A completed purchase, arranged the way the order saga leaves it: the order and its lines,
the buyer's money through the wallet into escrow and settled to the publisher, and the
entitlements granted (the saga itself is tested in tests/orders/test_saga.py; refunds start
after it); then asking for a refund of it, after as many downloads as a test needs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import update

from mercato.app.runtime import Runtime
from mercato.kit.clock import utcnow
from mercato.library import service as library
from mercato.models import Entitlement, Order, OrderLine
from mercato.wallet import service as wallet
from mercato.wallet.service import Split
from tests.library.support import V1
from tests.support.actors import Actor


@dataclass(frozen=True)
class Bought:
    order_id: str
    line_ids: list[str]


async def completed_order(runtime: Runtime, buyer: Actor, items: list[tuple[dict[str, Any], int, int, str]], *,
                          commission_bps: int = 2000, refund_window_days: int = 14,
                          completed_days_ago: float = 0) -> Bought:
    """``items``: (listing as the API returned it, unit price, quantity, delivery)."""
    user_id = uuid.UUID(buyer.id)
    order_id = uuid.uuid4()
    completed_at = utcnow() - timedelta(days=completed_days_ago)
    lines = [OrderLine(id=uuid.uuid4(), order_id=order_id, position=n, listing_id=uuid.UUID(listing["id"]),
                       publisher_id=uuid.UUID(listing["publisher"]["id"]),
                       title=listing["name"], delivery=delivery, quantity=quantity, unit_price=price, discount=0,
                       total=price * quantity, refunded_quantity=0, refunded_amount=0)
             for n, (listing, price, quantity, delivery) in enumerate(items)]
    total = sum(line.total for line in lines)
    async with runtime.db.transaction() as session:
        session.add(Order(id=order_id, user_id=user_id, idempotency_key=f"test-{order_id}", status="completed",
                          currency="USD", subtotal=total, discount=0, total=total, refunded_amount=0,
                          commission_bps=commission_bps, refund_window_days=refund_window_days,
                          expires_at=completed_at + timedelta(minutes=15), paid_at=completed_at,
                          completed_at=completed_at, created_at=completed_at, updated_at=completed_at))
        session.add_all(lines)
        await session.flush()
        await wallet.credit_payment(session, payment_id=uuid.uuid4(), user_id=user_id, provider="sandbox",
                                    amount=total, currency="USD")
        await wallet.debit_order(session, order_id=order_id, user_id=user_id, amount=total, currency="USD")
        await wallet.settle_order(session, order_id=order_id, commission_bps=commission_bps, currency="USD",
                                  splits=[Split(line.publisher_id, line.total) for line in lines])
        for line in lines:
            await library.grant(session, user_id=user_id, listing_id=line.listing_id, source="purchase",
                                order_id=order_id)
    return Bought(str(order_id), [str(line.id) for line in lines])


def keyed(actor: Actor, key: str | None = None) -> dict[str, str]:
    return {**actor.headers, "Idempotency-Key": key or uuid.uuid4().hex}


async def ask(client: httpx.AsyncClient, buyer: Actor, bought: Bought, **body: Any) -> httpx.Response:
    return await client.post(f"{V1}/orders/{bought.order_id}/refunds", headers=keyed(buyer),
                             json={"reason": "Not what I expected", **body})


async def downloaded(runtime: Runtime, buyer: Actor, listing_id: str, *, times: int) -> None:
    """As if ``buyer`` had downloaded ``listing_id`` ``times`` times (the automatic refund policy counts them)."""
    async with runtime.db.transaction() as session:
        await session.execute(update(Entitlement).where(Entitlement.user_id == uuid.UUID(buyer.id),
                                                        Entitlement.listing_id == uuid.UUID(listing_id))
                              .values(download_count=times))
