"""The checkout saga (M4, M5; DOMAIN.md "Saga"): debit, shortfall payment, completion and
settlement, compensation, late and excess money, and M1 under concurrency."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from mercato.app.runtime import Runtime
from mercato.config import Settings
from mercato.kit.clock import utcnow
from mercato.library import service as library
from mercato.models import EventDelivery, LedgerTransaction, LicenceKey, Notification, Order, OutboxEvent
from mercato.orders import service as orders
from mercato.wallet import service as wallet
from tests.support.actors import Actor, Actors
from tests.support.invariants import (
    assert_entitlements_follow_orders,
    assert_money_invariants,
)
from tests.support.orders import (
    V1,
    Seller,
    account_balance,
    balance,
    event_types,
    fund,
    item,
    listing_row,
    order_of,
    place,
    quiet,
    until,
)
from tests.support.payments import delivered, pay, read_payment


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.sandbox_confirm_delay_seconds = 0.1
    return settings


async def test_completion_settles_the_money_counts_the_sale_and_notifies_the_buyer(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, user: Actor) -> None:
    seller = await Seller.open(client, actors, runtime)
    app = await seller.listing(digital=1999)
    await fund(runtime, user, 1999)
    created = (await place(client, user, [item(app)], wait=20)).json()
    assert created["status"] == "completed"
    await quiet(runtime)
    commission = 1999 * 2000 // 10_000
    assert await account_balance(runtime, f"publisher_earnings:{seller.publisher_id}") == 1999 - commission
    assert await account_balance(runtime, "platform_revenue") == commission
    assert await account_balance(runtime, "orders_escrow") == 0
    assert (await listing_row(runtime, app["id"])).sale_count == 1
    async with runtime.db.read_session() as session:
        kinds = list(await session.scalars(select(Notification.kind).where(Notification.user_id == uuid.UUID(user.id))))
    assert "order.completed" in kinds
    await assert_money_invariants(runtime.db)


async def test_only_a_purchase_s_grant_is_owed_to_the_completion_step(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, user: Actor) -> None:
    # An admin's grant completes no order: the relay owes the completion step nothing for it,
    # so a bulk of grants (the demo's) never queues ahead of a buyer's order in the saga's lane.
    seller = await Seller.open(client, actors, runtime)
    bought, given = await seller.listing(digital=1999), await seller.listing(digital=2999)
    await fund(runtime, user, 1999)
    assert (await place(client, user, [item(bought)], wait=20)).json()["status"] == "completed"
    async with runtime.db.transaction() as session:
        await library.grant(session, user_id=uuid.UUID(user.id), listing_id=uuid.UUID(given["id"]), source="admin")
    await quiet(runtime)
    async with runtime.db.read_session() as session:
        owed = list(await session.scalars(select(EventDelivery.event_id).where(
            EventDelivery.subscriber == "orders.complete_on_granted")))
        grants = {row.data["source"]: row.id for row in await session.scalars(
            select(OutboxEvent).where(OutboxEvent.type == "entitlement.granted",
                                      OutboxEvent.user_id == uuid.UUID(user.id)))}
    assert set(grants) == {"purchase", "admin"}
    assert owed == [grants["purchase"]]


async def test_a_shortfall_paid_through_the_provider_completes_the_order(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, user: Actor) -> None:
    seller = await Seller.open(client, actors, runtime)
    app = await seller.listing(digital=1000)
    await fund(runtime, user, 300)
    created = (await place(client, user, [item(app)])).json()
    await until(runtime, created["id"], "awaiting_payment")
    started = await client.post(f"{V1}/orders/{created['id']}/pay", headers=user.headers)
    assert started.status_code == 200, started.text
    payment = started.json()["payment"]
    assert payment["amount"] == {"amount": 700, "currency": "USD"} and payment["checkout_url"]
    assert (await pay(client, payment)).status_code == 200
    await delivered(runtime)
    assert await until(runtime, created["id"], "completed") == "completed"
    await quiet(runtime)
    assert await balance(runtime, user) == 0
    async with runtime.db.read_session() as session:
        assert await library.is_entitled(session, user_id=uuid.UUID(user.id), listing_id=uuid.UUID(app["id"]))
    await assert_money_invariants(runtime.db)


async def test_pay_debits_the_wallet_when_it_holds_the_total_by_now(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, user: Actor) -> None:
    seller = await Seller.open(client, actors, runtime)
    app = await seller.listing(digital=500)
    created = (await place(client, user, [item(app)])).json()
    await until(runtime, created["id"], "awaiting_payment")
    await fund(runtime, user, 600)
    paid = await client.post(f"{V1}/orders/{created['id']}/pay", headers=user.headers)
    assert paid.status_code == 200 and paid.json()["payment"] is None, paid.text
    assert paid.json()["order"]["status"] == "paid"
    await until(runtime, created["id"], "completed")
    again = await client.post(f"{V1}/orders/{created['id']}/pay", headers=user.headers)
    assert again.status_code == 409 and again.json()["code"] == "invalid_transition"
    await quiet(runtime)
    assert await balance(runtime, user) == 100
    await assert_money_invariants(runtime.db)


async def test_a_payment_arriving_after_expiry_is_refunded(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, user: Actor) -> None:
    """M5/M8: the payment races expiry; expiry wins here, so the money goes back."""
    seller = await Seller.open(client, actors, runtime)
    app = await seller.listing(digital=800)
    await fund(runtime, user, 100)
    created = (await place(client, user, [item(app)])).json()
    await until(runtime, created["id"], "awaiting_payment")
    payment = (await client.post(f"{V1}/orders/{created['id']}/pay", headers=user.headers)).json()["payment"]
    async with runtime.db.transaction() as session:
        assert await orders.expire_due(session, now=utcnow() + timedelta(hours=1)) == 1
    assert (await pay(client, payment)).status_code == 200
    await delivered(runtime)
    await quiet(runtime)
    assert (await read_payment(client, user, payment["id"]))["status"] == "refunded"
    assert (await order_of(client, user, created["id"]))["status"] == "expired"
    assert await balance(runtime, user) == 100
    await assert_money_invariants(runtime.db)


async def test_the_part_of_a_payment_the_order_did_not_need_is_refunded(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, user: Actor) -> None:
    seller = await Seller.open(client, actors, runtime)
    app = await seller.listing(digital=1000)
    created = (await place(client, user, [item(app)])).json()
    await until(runtime, created["id"], "awaiting_payment")
    payment = (await client.post(f"{V1}/orders/{created['id']}/pay", headers=user.headers)).json()["payment"]
    assert payment["amount"]["amount"] == 1000
    await fund(runtime, user, 250)  # money from elsewhere meanwhile: only 750 of the payment is needed
    assert (await pay(client, payment)).status_code == 200
    await delivered(runtime)
    await until(runtime, created["id"], "completed")
    await quiet(runtime)
    refunded = await read_payment(client, user, payment["id"])
    assert refunded["status"] == "partially_refunded", refunded
    assert await balance(runtime, user) == 0
    await assert_money_invariants(runtime.db)


async def test_an_empty_key_pool_fails_the_order_and_refunds_it(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, user: Actor) -> None:
    seller = await Seller.open(client, actors, runtime)
    app = await seller.listing(digital=400)
    async with runtime.db.transaction() as session:  # a pool whose only key went to someone else
        session.add(LicenceKey(id=uuid.uuid4(), listing_id=uuid.UUID(app["id"]), key="AAAA-BBBB",
                               order_line_id=uuid.uuid4(), assigned_at=utcnow(), created_at=utcnow()))
    await fund(runtime, user, 400)
    created = (await place(client, user, [item(app)])).json()
    body = await order_of(client, user, created["id"], wait=20)
    assert body["status"] == "failed" and body["failure_reason"]
    await quiet(runtime)
    assert await balance(runtime, user) == 400
    assert await account_balance(runtime, "orders_escrow") == 0
    async with runtime.db.read_session() as session:
        assert not await library.is_entitled(session, user_id=uuid.UUID(user.id), listing_id=uuid.UUID(app["id"]))
        returns = await session.scalar(select(func.count()).select_from(LedgerTransaction).where(
            LedgerTransaction.reference == f"order-compensate:{created['id']}"))
    assert returns == 1
    assert "entitlement.refused" in await event_types(runtime, created["id"])
    await assert_money_invariants(runtime.db)


async def test_a_debit_landing_after_the_buyer_canceled_is_returned_once(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, user: Actor) -> None:
    seller = await Seller.open(client, actors, runtime)
    app = await seller.listing(digital=300)
    created = (await place(client, user, [item(app)])).json()
    await until(runtime, created["id"], "awaiting_payment")
    assert (await client.post(f"{V1}/orders/{created['id']}/cancel", headers=user.headers)).status_code == 200
    await fund(runtime, user, 300)
    order_id = uuid.UUID(created["id"])
    # The wallet's debit raced the cancel and lost: the money must come back, once.
    async with runtime.db.transaction() as session:
        await wallet.debit_order(session, order_id=order_id, user_id=uuid.UUID(user.id), amount=300, currency="USD")
        await orders.on_debited(session, order_id=order_id)
    async with runtime.db.transaction() as session:
        await orders.on_debited(session, order_id=order_id)
    await quiet(runtime)
    assert await balance(runtime, user) == 300
    assert (await order_of(client, user, created["id"]))["status"] == "canceled"
    await assert_money_invariants(runtime.db)


async def test_m1_fifty_wallets_two_hundred_concurrent_orders(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime) -> None:
    """QUALITY M1: 50 wallets × 1,000; 200 concurrent orders at 300 → exactly 150 paid,
    50 not, 0 5xx, every wallet at 100 — and the 150 then complete and settle: the
    publisher earns 150 × (300 − 20 %), the platform the commission, escrow ends empty."""
    seller = await Seller.open(client, actors, runtime)
    apps = [await seller.listing(digital=300) for _ in range(4)]
    buyers = [await actors.create() for _ in range(50)]
    for buyer in buyers:
        await fund(runtime, buyer, 1000)
    attempts = [(buyer, app) for buyer in buyers for app in apps]
    responses = await asyncio.gather(*(place(client, buyer, [item(app)]) for buyer, app in attempts))
    assert sorted({r.status_code for r in responses}) == [201], [r.text for r in responses if r.status_code != 201]
    ids = [r.json()["id"] for r in responses]
    for order_id in ids:
        await until(runtime, order_id, "completed", "awaiting_payment", timeout=120)
    await quiet(runtime, timeout=120)
    async with runtime.db.read_session() as session:
        by_status = dict((await session.execute(select(Order.status, func.count()).group_by(Order.status))).all())
        debits = await session.scalar(select(func.count()).select_from(LedgerTransaction).where(
            LedgerTransaction.kind == "purchase"))
        settlements = await session.scalar(select(func.count()).select_from(LedgerTransaction).where(
            LedgerTransaction.kind == "settlement"))
    assert by_status == {"completed": 150, "awaiting_payment": 50}, by_status
    assert debits == settlements == 150
    assert [await balance(runtime, buyer) for buyer in buyers] == [100] * 50
    commission = 300 * 2000 // 10_000
    assert await account_balance(runtime, f"publisher_earnings:{seller.publisher_id}") == 150 * (300 - commission)
    assert await account_balance(runtime, "platform_revenue") == 150 * commission
    assert await account_balance(runtime, "orders_escrow") == 0
    assert sum([(await listing_row(runtime, app["id"])).sale_count for app in apps]) == 150
    async with runtime.db.read_session() as session:
        owned = [sum([await library.is_entitled(session, user_id=uuid.UUID(buyer.id), listing_id=uuid.UUID(app["id"]))
                      for app in apps]) for buyer in buyers]
    assert owned == [3] * 50
    await assert_money_invariants(runtime.db)
    await assert_entitlements_follow_orders(runtime.db)
