"""Physical fulfilment (M4): awaiting shipment, the publisher's order list, ship, deliver,
completion and entitlement, the publisher's cancel with a full refund, and who may do what."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy import select

from mercato.app.runtime import Runtime
from mercato.library import service as library
from mercato.models import AuditEntry, Notification
from tests.support.actors import Actor, Actors
from tests.support.invariants import assert_money_invariants
from tests.support.orders import (
    ADDRESS,
    SHIPPING,
    V1,
    Seller,
    account_balance,
    balance,
    fund,
    item,
    order_of,
    paid_physical_order,
    place,
    quiet,
    stock_of,
    until,
)


async def test_ship_then_deliver_completes_and_entitles(client: httpx.AsyncClient, actors: Actors,
                                                        runtime: Runtime, user: Actor) -> None:
    seller = await Seller.open(client, actors, runtime)
    created, box = await paid_physical_order(client, runtime, user, seller)
    assert [s["status"] for s in created["shipments"]] == ["awaiting"]
    listed = await client.get(f"{V1}/publishers/{seller.slug}/orders", headers=seller.developer.headers,
                              params={"status": "awaiting_shipment"})
    assert listed.status_code == 200, listed.text
    [entry] = listed.json()["items"]
    assert entry["id"] == created["id"] and entry["shipping_address"]["city"] == "Berlin"
    assert entry["shipment"]["status"] == "awaiting" and len(entry["lines"]) == 1

    early = await client.post(f"{V1}/orders/{created['id']}/deliver", headers=seller.developer.headers)
    assert early.status_code == 409 and early.json()["code"] == "invalid_transition"
    shipped = await client.post(f"{V1}/orders/{created['id']}/ship", headers=seller.developer.headers, json=SHIPPING)
    assert shipped.status_code == 200, shipped.text
    assert shipped.json()["status"] == "shipped" and shipped.json()["shipments"][0]["tracking_number"] == "JD0001"
    twice = await client.post(f"{V1}/orders/{created['id']}/ship", headers=seller.developer.headers, json=SHIPPING)
    assert twice.status_code == 409
    delivered = await client.post(f"{V1}/orders/{created['id']}/deliver", headers=seller.developer.headers)
    assert delivered.status_code == 200, delivered.text
    assert await until(runtime, created["id"], "completed") == "completed"
    async with runtime.db.read_session() as session:
        assert await library.is_entitled(session, user_id=uuid.UUID(user.id), listing_id=uuid.UUID(box["id"]))
        kinds = set(await session.scalars(select(Notification.kind).where(Notification.user_id == uuid.UUID(user.id))))
        actions = set(await session.scalars(select(AuditEntry.action).where(AuditEntry.resource_id == created["id"])))
    assert "order.shipped" in kinds and {"order:ship", "order:deliver"} <= actions
    await quiet(runtime)
    assert await stock_of(runtime, box["id"]) == 3
    assert await account_balance(runtime, f"publisher_earnings:{seller.publisher_id}") == 5000 - 1000
    await assert_money_invariants(runtime.db)


async def test_the_publisher_cancels_before_shipping_full_refund_and_stock_back(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, user: Actor) -> None:
    seller = await Seller.open(client, actors, runtime)
    created, box = await paid_physical_order(client, runtime, user, seller, quantity=3, stock=3)
    assert await stock_of(runtime, box["id"]) == 0 and await balance(runtime, user) == 0
    canceled = await client.post(f"{V1}/orders/{created['id']}/cancel", headers=seller.developer.headers)
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled", canceled.text
    await quiet(runtime)
    assert await balance(runtime, user) == 7500
    assert await stock_of(runtime, box["id"]) == 3
    assert await account_balance(runtime, "orders_escrow") == 0
    after = await client.post(f"{V1}/orders/{created['id']}/ship", headers=seller.developer.headers, json=SHIPPING)
    assert after.status_code == 409
    await assert_money_invariants(runtime.db)


async def test_nobody_ships_another_publishers_order_or_an_unpaid_one(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, user: Actor) -> None:
    seller, rival = await Seller.open(client, actors, runtime), await Seller.open(client, actors, runtime)
    created, _ = await paid_physical_order(client, runtime, user, seller)
    for verb, body in (("ship", SHIPPING), ("deliver", None), ("cancel", None)):
        response = await client.post(f"{V1}/orders/{created['id']}/{verb}", headers=rival.developer.headers,
                                     json=body)
        assert response.status_code == 404, (verb, response.text)
    assert (await client.get(f"{V1}/publishers/{seller.slug}/orders", headers=rival.developer.headers)
            ).status_code == 403
    assert (await client.post(f"{V1}/orders/{created['id']}/ship", headers=user.headers, json=SHIPPING)
            ).status_code == 403
    buyer_cancel = await client.post(f"{V1}/orders/{created['id']}/cancel", headers=user.headers)
    assert buyer_cancel.status_code == 409 and buyer_cancel.json()["code"] == "invalid_transition"

    unpaid_box = await seller.listing(physical=900, stock=2)
    poor = await actors.create()
    unpaid = (await place(client, poor, [item(unpaid_box, "physical")], shipping_address=ADDRESS)).json()
    await until(runtime, unpaid["id"], "awaiting_payment")
    refused = await client.post(f"{V1}/orders/{unpaid['id']}/ship", headers=seller.developer.headers, json=SHIPPING)
    assert refused.status_code == 409 and refused.json()["code"] == "invalid_transition"
    listed = (await client.get(f"{V1}/publishers/{seller.slug}/orders", headers=seller.developer.headers,
                               params={"status": "awaiting_payment"})).json()
    assert [o["id"] for o in listed["items"]] == [unpaid["id"]] and listed["items"][0]["shipping_address"] is None
    await quiet(runtime)
    await assert_money_invariants(runtime.db)


async def test_a_mixed_order_of_two_publishers_completes_when_both_delivered(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, user: Actor) -> None:
    first, second = await Seller.open(client, actors, runtime), await Seller.open(client, actors, runtime)
    digital = await first.listing(digital=100)
    box_a, box_b = await first.listing(physical=200, stock=2), await second.listing(physical=300, stock=2)
    await fund(runtime, user, 600)
    created = (await place(client, user, [item(digital), item(box_a, "physical"), item(box_b, "physical")],
                           shipping_address=ADDRESS, wait=20)).json()
    assert created["status"] == "awaiting_shipment" and len(created["shipments"]) == 2
    async with runtime.db.read_session() as session:  # digital lines of a mixed order wait for the delivery too
        assert not await library.is_entitled(session, user_id=uuid.UUID(user.id),
                                             listing_id=uuid.UUID(digital["id"]))
    for seller in (first, second):
        shipped = await client.post(f"{V1}/orders/{created['id']}/ship", headers=seller.developer.headers,
                                    json=SHIPPING)
        assert shipped.status_code == 200, shipped.text
    body = await order_of(client, user, created["id"])
    assert body["status"] == "shipped"
    assert (await client.post(f"{V1}/orders/{created['id']}/deliver", headers=first.developer.headers)
            ).status_code == 200
    assert (await order_of(client, user, created["id"]))["status"] == "shipped"
    assert (await client.post(f"{V1}/orders/{created['id']}/deliver", headers=second.developer.headers)
            ).status_code == 200
    await until(runtime, created["id"], "completed")
    async with runtime.db.read_session() as session:
        for listing in (digital, box_a, box_b):
            assert await library.is_entitled(session, user_id=uuid.UUID(user.id),
                                             listing_id=uuid.UUID(listing["id"]))
    await quiet(runtime)
    assert await account_balance(runtime, f"publisher_earnings:{second.publisher_id}") == 300 - 60
    await assert_money_invariants(runtime.db)


async def test_a_publisher_ships_and_delivers_only_its_own_part_once_and_never_a_digital_order(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, user: Actor) -> None:
    first, second = await Seller.open(client, actors, runtime), await Seller.open(client, actors, runtime)
    box_a, box_b = await first.listing(physical=200, stock=2), await second.listing(physical=300, stock=2)
    await fund(runtime, user, 500)
    created = (await place(client, user, [item(box_a, "physical"), item(box_b, "physical")],
                           shipping_address=ADDRESS, wait=20)).json()
    assert created["status"] == "awaiting_shipment", created
    url = f"{V1}/orders/{created['id']}"
    at_once = await asyncio.gather(*(client.post(f"{url}/ship", headers=first.developer.headers, json=SHIPPING)
                                     for _ in range(3)))
    assert sorted(r.status_code for r in at_once) == [200, 409, 409], [r.text for r in at_once]
    body = await order_of(client, user, created["id"])
    assert body["status"] == "awaiting_shipment"  # the second publisher's part has not shipped
    assert {s["publisher_id"]: s["status"] for s in body["shipments"]} == {
        first.publisher_id: "shipped", second.publisher_id: "awaiting"}
    early = await client.post(f"{url}/deliver", headers=second.developer.headers)
    assert early.status_code == 409 and early.json()["code"] == "invalid_transition"
    assert (await client.post(f"{url}/deliver", headers=first.developer.headers)).status_code == 200
    again = await client.post(f"{url}/deliver", headers=first.developer.headers)
    assert again.status_code == 409 and again.json()["code"] == "invalid_transition"
    assert (await order_of(client, user, created["id"]))["status"] == "awaiting_shipment"

    app = await first.listing(digital=100)
    await fund(runtime, user, 100)
    digital = (await place(client, user, [item(app)], wait=20)).json()
    assert digital["status"] == "completed", digital
    for verb, body_ in (("ship", SHIPPING), ("deliver", None)):
        refused = await client.post(f"{V1}/orders/{digital['id']}/{verb}", headers=first.developer.headers,
                                    json=body_)
        assert refused.status_code == 404, (verb, refused.text)
    await quiet(runtime)
    assert await account_balance(runtime, f"publisher_earnings:{first.publisher_id}") == 100 - 20
    await assert_money_invariants(runtime.db)
