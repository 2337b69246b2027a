"""Checkout (M3): pricing, validation, idempotency (INV-4, QUALITY M2–M4), stock (M7/M9),
free orders, visibility (A2/A3), cancel, and the expiry sweep (M5)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
from sqlalchemy import func, select

from mercato.app.runtime import Runtime
from mercato.kit.clock import utcnow
from mercato.library import service as library
from mercato.models import Order
from mercato.orders import service as orders
from tests.support.actors import Actor, Actors
from tests.support.invariants import assert_money_invariants
from tests.support.orders import (
    ADDRESS,
    V1,
    Seller,
    balance,
    event_types,
    fund,
    item,
    order_of,
    place,
    quiet,
    stock_of,
    until,
)


async def test_a_digital_checkout_completes_through_the_saga(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, user: Actor) -> None:
    seller = await Seller.open(client, actors, runtime)
    app = await seller.listing(digital=1000)
    await fund(runtime, user, 1500)
    response = await place(client, user, [item(app)])
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["total"] == {"amount": 1000, "currency": "USD"} and created["lines"][0]["publisher_id"] == \
        seller.publisher_id
    body = await order_of(client, user, created["id"], wait=20)
    assert body["status"] == "completed" and body["paid_at"] and body["completed_at"]
    async with runtime.db.read_session() as session:
        assert await library.is_entitled(session, user_id=uuid.UUID(user.id), listing_id=uuid.UUID(app["id"]))
    await quiet(runtime)
    assert await balance(runtime, user) == 500
    types = await event_types(runtime, created["id"])
    assert types[:2] == ["order.created", "wallet.debited"] and "order.paid" in types and "order.completed" in types
    await assert_money_invariants(runtime.db)


async def test_wait_on_create_answers_with_the_settled_order(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, user: Actor) -> None:
    seller = await Seller.open(client, actors, runtime)
    app = await seller.listing(digital=300)
    await fund(runtime, user, 300)
    response = await place(client, user, [item(app)], wait=20)
    assert response.status_code == 201 and response.json()["status"] == "completed", response.text
    await quiet(runtime)
    await assert_money_invariants(runtime.db)


async def test_insufficient_funds_leave_the_order_awaiting_payment(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, user: Actor) -> None:
    seller = await Seller.open(client, actors, runtime)
    app = await seller.listing(digital=1000)
    await fund(runtime, user, 400)
    created = (await place(client, user, [item(app)])).json()
    body = await order_of(client, user, created["id"], wait=20)
    assert body["status"] == "awaiting_payment"
    assert await balance(runtime, user) == 400
    await quiet(runtime)
    await assert_money_invariants(runtime.db)


async def test_a_free_order_completes_at_once(client: httpx.AsyncClient, actors: Actors, runtime: Runtime,
                                              user: Actor) -> None:
    seller = await Seller.open(client, actors, runtime)
    free = await seller.listing(digital=0)
    response = await place(client, user, [item(free)])
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "completed"
    async with runtime.db.read_session() as session:
        assert await library.is_entitled(session, user_id=uuid.UUID(user.id), listing_id=uuid.UUID(free["id"]))
    again = await place(client, user, [item(free)])
    assert again.status_code == 409 and again.json()["code"] == "already_owned"
    await quiet(runtime)
    await assert_money_invariants(runtime.db)


async def test_idempotency_same_key_same_order_other_body_422_missing_400(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, user: Actor) -> None:
    seller = await Seller.open(client, actors, runtime)
    one, two = await seller.listing(digital=100), await seller.listing(digital=200)
    await fund(runtime, user, 1000)
    first = await place(client, user, [item(one)], key="checkout-1")
    again = await place(client, user, [item(one)], key="checkout-1")
    assert first.status_code == again.status_code == 201 and first.json()["id"] == again.json()["id"]
    other = await place(client, user, [item(two)], key="checkout-1")
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    missing = await client.post(f"{V1}/orders", headers=user.headers, json={"items": [item(two)]})
    assert missing.status_code == 400
    async with runtime.db.read_session() as session:
        count = await session.scalar(select(func.count()).select_from(Order).where(
            Order.user_id == uuid.UUID(user.id)))
    assert count == 1
    await quiet(runtime)
    await assert_money_invariants(runtime.db)


async def test_bad_orders_are_refused_with_a_code_and_change_nothing(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, user: Actor) -> None:
    seller = await Seller.open(client, actors, runtime)
    digital = await seller.listing(digital=100)
    box = await seller.listing(physical=500, stock=5)
    draft_response = await client.post(f"{V1}/listings", headers=seller.developer.headers, json={
        "publisher": seller.slug, "slug": f"draft-{uuid.uuid4().hex[:6]}", "name": "Draft", "kind": "app"})
    draft = draft_response.json()
    cases = [
        ([item(digital, quantity=2)], {}, 422, "order_invalid"),
        ([item(digital, "physical")], {}, 422, "listing_not_available"),
        ([item(draft)], {}, 422, "listing_not_available"),
        ([{"listing_id": str(uuid.uuid4()), "delivery": "digital", "quantity": 1}], {}, 422,
         "listing_not_available"),
        ([item(box, "physical")], {}, 422, "shipping_address_required"),
        ([item(box, "physical", 11)], {"shipping_address": ADDRESS}, 422, "order_invalid"),
        ([item(digital)], {"shipping_address": ADDRESS}, 422, "order_invalid"),
        ([item(box, "physical")], {"shipping_address": {**ADDRESS, "country": "XX"}}, 422, "validation_failed"),
        ([item(digital), item(digital)], {}, 422, "order_invalid"),
        ([item(box, "physical", 6)], {"shipping_address": ADDRESS}, 409, "out_of_stock"),
    ]
    for items, extra, status, code in cases:
        response = await place(client, user, items, **extra)
        assert (response.status_code, response.json().get("code")) == (status, code), (items, extra, response.text)
    own = await place(client, seller.developer, [item(digital)])
    assert own.status_code == 409 and own.json()["code"] == "own_listing"
    async with runtime.db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 0
    assert await stock_of(runtime, box["id"]) == 5
    await assert_money_invariants(runtime.db)


async def test_orders_are_visible_to_their_buyer_and_admins_only(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, user: Actor, admin: Actor) -> None:
    seller = await Seller.open(client, actors, runtime)
    app = await seller.listing(digital=100)
    created = (await place(client, user, [item(app)])).json()
    stranger = await actors.create()
    assert (await client.get(f"{V1}/orders/{created['id']}", headers=stranger.headers)).status_code == 404
    assert (await client.post(f"{V1}/orders/{created['id']}/cancel", headers=stranger.headers)).status_code == 404
    assert (await client.get(f"{V1}/orders/{created['id']}", headers=admin.headers)).status_code == 200
    mine = (await client.get(f"{V1}/orders", headers=user.headers)).json()
    assert [o["id"] for o in mine["items"]] == [created["id"]]
    assert (await client.get(f"{V1}/orders", headers=stranger.headers)).json()["items"] == []
    await quiet(runtime)


async def test_my_orders_are_listed_newest_first_with_a_cursor_and_a_status_filter(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, user: Actor) -> None:
    seller = await Seller.open(client, actors, runtime)
    ids = []
    for _ in range(3):
        ids.append((await place(client, user, [item(await seller.listing(digital=100))])).json()["id"])
    for order_id in ids:
        await until(runtime, order_id, "awaiting_payment")
    first = (await client.get(f"{V1}/orders", headers=user.headers, params={"limit": 2})).json()
    second = (await client.get(f"{V1}/orders", headers=user.headers,
                               params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert [o["id"] for o in first["items"] + second["items"]] == ids[::-1]
    filtered = (await client.get(f"{V1}/orders", headers=user.headers, params={"status": "completed"})).json()
    assert filtered["items"] == []
    await quiet(runtime)


async def test_the_buyer_cancels_an_unpaid_order_and_stock_returns(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, user: Actor) -> None:
    seller = await Seller.open(client, actors, runtime)
    box = await seller.listing(physical=500, stock=3)
    created = (await place(client, user, [item(box, "physical", 2)], shipping_address=ADDRESS)).json()
    assert await stock_of(runtime, box["id"]) == 1
    await until(runtime, created["id"], "awaiting_payment")
    canceled = await client.post(f"{V1}/orders/{created['id']}/cancel", headers=user.headers)
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled", canceled.text
    assert await stock_of(runtime, box["id"]) == 3
    again = await client.post(f"{V1}/orders/{created['id']}/cancel", headers=user.headers)
    assert again.status_code == 409 and again.json()["code"] == "invalid_transition"
    assert await stock_of(runtime, box["id"]) == 3
    await quiet(runtime)
    await assert_money_invariants(runtime.db)


async def test_a_paid_order_cannot_be_canceled_by_its_buyer(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, user: Actor) -> None:
    seller = await Seller.open(client, actors, runtime)
    app = await seller.listing(digital=100)
    await fund(runtime, user, 100)
    created = (await place(client, user, [item(app)], wait=20)).json()
    assert created["status"] == "completed"
    refused = await client.post(f"{V1}/orders/{created['id']}/cancel", headers=user.headers)
    assert refused.status_code == 409 and refused.json()["code"] == "invalid_transition"
    await quiet(runtime)
    await assert_money_invariants(runtime.db)


async def test_expiry_returns_stock_once(client: httpx.AsyncClient, actors: Actors, runtime: Runtime,
                                         user: Actor) -> None:
    seller = await Seller.open(client, actors, runtime)
    box = await seller.listing(physical=500, stock=4)
    created = (await place(client, user, [item(box, "physical", 3)], shipping_address=ADDRESS)).json()
    await until(runtime, created["id"], "awaiting_payment")
    assert await stock_of(runtime, box["id"]) == 1
    later = utcnow() + timedelta(hours=1)
    async with runtime.db.transaction() as session:
        assert await orders.expire_due(session, now=later) == 1
    async with runtime.db.transaction() as session:
        assert await orders.expire_due(session, now=later) == 0
    body = await order_of(client, user, created["id"])
    assert body["status"] == "expired" and body["closed_at"]
    assert await stock_of(runtime, box["id"]) == 4
    assert "order.expired" in await event_types(runtime, created["id"])
    await quiet(runtime)
    await assert_money_invariants(runtime.db)


async def test_stock_of_ten_and_a_hundred_concurrent_buyers(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime) -> None:
    """M7/M9: exactly ten reserved, everyone else 409 ``out_of_stock``, no 5xx."""
    seller = await Seller.open(client, actors, runtime)
    box = await seller.listing(physical=100, stock=10)
    buyers = [await actors.create() for _ in range(20)]
    attempts = [(buyers[n % 20], f"rush-{n}") for n in range(100)]
    responses = await asyncio.gather(*(place(client, buyer, [item(box, "physical")], key=key,
                                             shipping_address=ADDRESS) for buyer, key in attempts))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 10 and statuses.count(409) == 90, statuses
    assert all(r.json()["code"] == "out_of_stock" for r in responses if r.status_code == 409)
    assert await stock_of(runtime, box["id"]) == 0
    async with runtime.db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 10
    await quiet(runtime)
    await assert_money_invariants(runtime.db)


async def test_an_order_is_paid_once_when_pay_is_sent_many_times_at_once(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, user: Actor) -> None:
    seller = await Seller.open(client, actors, runtime)
    app = await seller.listing(digital=500)
    created = (await place(client, user, [item(app)], wait=20)).json()
    assert created["status"] == "awaiting_payment", created
    await fund(runtime, user, 1500)  # enough for three payments of it
    answers = await asyncio.gather(*(client.post(f"{V1}/orders/{created['id']}/pay", headers=user.headers)
                                     for _ in range(4)))
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409], [a.text for a in answers]
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"invalid_transition"}
    assert (await order_of(client, user, created["id"], wait=20))["status"] == "completed"
    await quiet(runtime)
    assert await balance(runtime, user) == 1000
    await assert_money_invariants(runtime.db)
