"""QUALITY M8: a provider payment racing the order's expiry (DOMAIN.md "Saga": late money).

An order waits for a provider payment for its shortfall; the payer paid at the provider,
whose webhook is held back here, so the store learns of it only when the test confirms it
(the signed webhook, the poller, or both) while the expiry sweep runs past the order's
deadline. Whichever arrives first, the outcome is paid XOR expired: a paid order completes
and keeps the money; an expired one gets none of it, and the late payment is credited once
and refunded in full through the provider.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from mercato.app.runtime import Runtime
from mercato.kit.clock import utcnow
from mercato.library import service as library
from mercato.models import LedgerTransaction
from mercato.orders import service as orders
from mercato.payments import service as payments
from tests.support.actors import Actor, Actors
from tests.support.invariants import (
    assert_entitlements_follow_orders,
    assert_money_invariants,
)
from tests.support.orders import (
    V1,
    Seller,
    balance,
    fund,
    item,
    order_of,
    place,
    quiet,
    until,
)
from tests.support.payments import (
    credits_of,
    delivered,
    pay,
    post_webhook,
    provider_ref,
    read_payment,
    sandbox_event,
    signed,
)

PRICE, HELD = 800, 100  # the buyer holds 100, so the provider payment is for 700
Step = Callable[[], Awaitable[Any]]


@pytest.fixture
async def seller(client: httpx.AsyncClient, actors: Actors, runtime: Runtime) -> Seller:
    # The provider's own webhook is dropped: the test decides when the store hears of the payment.
    runtime.settings.sandbox_webhook_drop_probability = 1.0
    return await Seller.open(client, actors, runtime)


async def awaiting_provider_payment(client: httpx.AsyncClient, actors: Actors, runtime: Runtime,
                                    app: dict[str, Any]) -> tuple[Actor, str, dict[str, Any]]:
    """A buyer, their order awaiting payment, and the shortfall's payment, paid at the provider."""
    buyer = await actors.create()
    await fund(runtime, buyer, HELD)
    created = (await place(client, buyer, [item(app)])).json()
    await until(runtime, created["id"], "awaiting_payment")
    started = await client.post(f"{V1}/orders/{created['id']}/pay", headers=buyer.headers)
    assert started.status_code == 200, started.text
    payment = started.json()["payment"]
    assert payment["amount"]["amount"] == PRICE - HELD
    assert (await pay(client, payment)).status_code == 200
    await delivered(runtime)
    assert (await read_payment(client, buyer, payment["id"]))["status"] == "pending"  # the store was not told
    return buyer, created["id"], payment


def confirmations(client: httpx.AsyncClient, runtime: Runtime, payment: dict[str, Any], ref: str) -> dict[str, Step]:
    async def webhook() -> None:
        body = sandbox_event(ref, payment["id"], "succeeded", amount=PRICE - HELD)
        response = await post_webhook(client, body, signed(runtime, body))
        assert response.status_code == 200, response.text

    async def poll() -> None:
        await payments.poll_due(runtime.db, gateway=runtime.payments, now=utcnow() + timedelta(seconds=31))

    async def both() -> None:
        await asyncio.gather(webhook(), poll())

    return {"webhook": webhook, "poll": poll, "both": both}


def sweep(runtime: Runtime) -> Step:
    async def expire() -> int:
        async with runtime.db.transaction() as session:
            return await orders.expire_due(session, now=utcnow() + timedelta(hours=1))

    return expire


async def later(step: Step, delay: float) -> None:
    await asyncio.sleep(delay)
    await step()


async def outcome(client: httpx.AsyncClient, runtime: Runtime, buyer: Actor, order_id: str,
                  payment: dict[str, Any], app: dict[str, Any]) -> str:
    """Check paid XOR expired once everything settled, and say which it was."""
    await delivered(runtime)
    await quiet(runtime)
    status = (await order_of(client, buyer, order_id))["status"]
    paid = await read_payment(client, buyer, payment["id"])
    async with runtime.db.read_session() as session:
        entitled = await library.is_entitled(session, user_id=uuid.UUID(buyer.id), listing_id=uuid.UUID(app["id"]))
        debits, returns = [int(await session.scalar(select(func.count()).select_from(LedgerTransaction).where(
            LedgerTransaction.reference == f"{kind}:{order_id}")) or 0) for kind in ("order-debit", "order-compensate")]
    assert await credits_of(runtime, payment["id"]) == 1  # credited once, whatever confirmed it
    if status == "completed":
        assert (paid["status"], paid["refunded_amount"]["amount"]) == ("succeeded", 0), paid
        assert (debits, returns, entitled) == (1, 0, True)
        assert await balance(runtime, buyer) == 0
    else:
        assert status == "expired", status
        assert (paid["status"], paid["refunded_amount"]["amount"]) == ("refunded", PRICE - HELD), paid
        assert debits == returns and not entitled
        assert await balance(runtime, buyer) == HELD
    await assert_money_invariants(runtime.db)
    return status


async def test_expiry_before_the_confirmation_refunds_the_late_payment(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, seller: Seller) -> None:
    app = await seller.listing(digital=PRICE)
    for how in ("webhook", "poll", "both"):
        buyer, order_id, payment = await awaiting_provider_payment(client, actors, runtime, app)
        confirm = confirmations(client, runtime, payment, await provider_ref(runtime, payment["id"]))[how]
        assert await sweep(runtime)() == 1
        await confirm()
        assert await outcome(client, runtime, buyer, order_id, payment, app) == "expired", how


async def test_a_confirmation_before_expiry_pays_the_order_and_the_sweep_leaves_it(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, seller: Seller) -> None:
    app = await seller.listing(digital=PRICE)
    for how in ("webhook", "poll", "both"):
        buyer, order_id, payment = await awaiting_provider_payment(client, actors, runtime, app)
        confirm = confirmations(client, runtime, payment, await provider_ref(runtime, payment["id"]))[how]
        await confirm()
        await until(runtime, order_id, "completed")
        assert await sweep(runtime)() == 0
        assert await outcome(client, runtime, buyer, order_id, payment, app) == "completed", how


@pytest.mark.parametrize("how", ["webhook", "poll", "both"])
async def test_a_confirmation_racing_the_expiry_sweep_is_paid_xor_expired(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, seller: Seller, how: str) -> None:
    """Both run at once, each arriving first in turn and a little later than the other (the
    sweep starting while the payment's event is being handled): never both, never neither."""
    app = await seller.listing(digital=PRICE)
    seen = []
    for delay in (0.0, 0.005, 0.02, 0.05):
        for sweep_first in (True, False):
            buyer, order_id, payment = await awaiting_provider_payment(client, actors, runtime, app)
            confirm = confirmations(client, runtime, payment, await provider_ref(runtime, payment["id"]))[how]
            expire = sweep(runtime)
            if sweep_first:
                await asyncio.gather(expire(), later(confirm, delay))
            else:
                await asyncio.gather(confirm(), later(expire, delay))
            seen.append(await outcome(client, runtime, buyer, order_id, payment, app))
    assert set(seen) <= {"completed", "expired"}
    await assert_entitlements_follow_orders(runtime.db)
