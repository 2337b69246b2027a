"""M6: refunds — the window, the automatic policy, publisher and admin decisions, partial
refunds per line and unit, the money reversed, the library revoked, and nobody refunded twice."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from mercato.app.runtime import Runtime
from mercato.ledger import accounts
from mercato.ledger import service as ledger
from tests.library.support import V1, Store, audit_rows, eventually
from tests.support.actors import Actor
from tests.support.invariants import assert_money_invariants
from tests.support.pages import sign_in
from tests.support.refunds import ask, completed_order, downloaded, keyed


@pytest.fixture
async def store(client: httpx.AsyncClient, actors, runtime: Runtime) -> Store:  # type: ignore[no-untyped-def]
    return await Store.open(client, actors, runtime)


async def balance(runtime: Runtime, ref: accounts.AccountRef) -> int:
    async with runtime.db.read_session() as session:
        return await ledger.balance(session, ref)


async def settled(client: httpx.AsyncClient, who: Actor, refund_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any]:
        return (await client.get(f"{V1}/refunds/{refund_id}", headers=who.headers)).json()  # type: ignore[no-any-return]

    return await eventually(probe, lambda refund: refund["status"] == "completed")


async def owns(client: httpx.AsyncClient, who: Actor, listing_id: str) -> bool:
    library = (await client.get(f"{V1}/library", headers=who.headers)).json()
    return any(item["listing"]["id"] == listing_id for item in library["items"])


async def test_a_refund_inside_the_policy_is_approved_at_once_and_reverses_the_sale(
        client: httpx.AsyncClient, runtime: Runtime, store: Store, actors) -> None:  # type: ignore[no-untyped-def]
    listing = await store.listing(price=1000)
    buyer = await actors.create()
    bought = await completed_order(runtime, buyer, [(listing, 1000, 1, "digital")])
    publisher_id = uuid.UUID(listing["publisher"]["id"])
    assert await balance(runtime, accounts.publisher_earnings(publisher_id)) == 800
    response = await ask(client, buyer, bought)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "approved" and response.json()["automatic"] is True
    assert response.json()["amount"] == {"amount": 1000, "currency": "USD"}
    await settled(client, buyer, response.json()["id"])
    assert await balance(runtime, accounts.user_wallet(uuid.UUID(buyer.id))) == 1000
    assert await balance(runtime, accounts.publisher_earnings(publisher_id)) == 0
    assert await balance(runtime, accounts.PLATFORM_REVENUE) == 0
    assert not await owns(client, buyer, listing["id"])
    order_state = await _order_status(runtime, bought.order_id)
    assert order_state == ("refunded", 1000)
    await assert_money_invariants(runtime.db)


async def test_a_refund_after_too_many_downloads_waits_for_the_publisher_who_approves_it(
        client: httpx.AsyncClient, runtime: Runtime, store: Store, actors) -> None:  # type: ignore[no-untyped-def]
    listing = await store.listing(price=1500)
    buyer = await actors.create()
    bought = await completed_order(runtime, buyer, [(listing, 1500, 1, "digital")])
    await downloaded(runtime, buyer, listing["id"], times=4)  # the default policy allows 3
    response = await ask(client, buyer, bought)
    assert response.status_code == 201 and response.json()["status"] == "requested"
    refund_id = response.json()["id"]
    waiting = (await client.get(f"{V1}/refunds", headers=store.member.headers,
                                params={"status": "requested"})).json()["items"]
    assert [refund["id"] for refund in waiting] == [refund_id]
    # the publisher's members are told, with a link to the order on a console page (not an API path)
    told = (await client.get(f"{V1}/notifications", headers=store.member.headers)).json()["items"]
    asked = [n for n in told if n["kind"] == "refund.requested"]
    assert [n["link"] for n in asked] == [f"/console/publisher/{store.publisher}/orders?status=#o-{bought.order_id}"]
    await sign_in(client, store.member.email)
    page = await client.get(asked[0]["link"].split("#")[0])
    assert page.status_code == 200 and f"Physical orders of Publisher {store.publisher}" in page.text
    approved = await client.post(f"{V1}/refunds/{refund_id}/approve", headers=store.member.headers, json={})
    assert approved.status_code == 200, approved.text
    await settled(client, buyer, refund_id)
    assert await balance(runtime, accounts.user_wallet(uuid.UUID(buyer.id))) == 1500
    assert [row.after["status"] for row in await audit_rows(runtime, "refund:approve")] == ["approved"]
    again = await client.post(f"{V1}/refunds/{refund_id}/approve", headers=store.admin.headers, json={})
    assert again.status_code == 409 and again.json()["code"] == "invalid_transition"
    await assert_money_invariants(runtime.db)


async def test_a_rejected_refund_moves_no_money_and_tells_the_reason(
        client: httpx.AsyncClient, runtime: Runtime, store: Store, actors) -> None:  # type: ignore[no-untyped-def]
    listing = await store.listing(price=900)
    buyer = await actors.create()
    bought = await completed_order(runtime, buyer, [(listing, 900, 1, "digital")])
    await downloaded(runtime, buyer, listing["id"], times=10)
    refund_id = (await ask(client, buyer, bought)).json()["id"]
    no_reason = await client.post(f"{V1}/refunds/{refund_id}/reject", headers=store.developer.headers, json={})
    assert no_reason.status_code == 422
    rejected = await client.post(f"{V1}/refunds/{refund_id}/reject", headers=store.developer.headers,
                                 json={"reason": "Used for a month"})
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    assert rejected.json()["decision_reason"] == "Used for a month"
    assert await balance(runtime, accounts.user_wallet(uuid.UUID(buyer.id))) == 0
    assert await owns(client, buyer, listing["id"])
    await assert_money_invariants(runtime.db)


async def test_partial_refunds_of_a_physical_line_add_up_to_exactly_what_was_paid(
        client: httpx.AsyncClient, runtime: Runtime, store: Store, actors) -> None:  # type: ignore[no-untyped-def]
    """3 units for 1000 in total (a discount made the unit price uneven): 333 + 333 + 334."""
    listing = await store.listing(price=500)
    buyer = await actors.create()
    bought = await completed_order(runtime, buyer, [(listing, 500, 3, "physical")])
    async with runtime.db.transaction() as session:  # the discounted line total
        from sqlalchemy import update

        from mercato.models import OrderLine
        await session.execute(update(OrderLine).where(OrderLine.id == uuid.UUID(bought.line_ids[0])).values(total=1000))
    amounts = []
    for _ in range(3):
        response = await ask(client, buyer, bought, lines=[{"line_id": bought.line_ids[0], "quantity": 1}])
        assert response.status_code == 201 and response.json()["status"] == "requested"  # goods must come back
        approved = await client.post(f"{V1}/refunds/{response.json()['id']}/approve", headers=store.admin.headers)
        assert approved.status_code == 200, approved.text
        amounts.append(approved.json()["amount"]["amount"])
        await settled(client, buyer, response.json()["id"])
    assert amounts == [333, 333, 334]
    over = await ask(client, buyer, bought, lines=[{"line_id": bought.line_ids[0], "quantity": 1}])
    assert over.status_code == 409 and over.json()["code"] == "already_refunded"


async def test_a_line_refunded_in_parts_gives_back_exactly_the_commission_its_sale_took(
        client: httpx.AsyncClient, runtime: Runtime, store: Store, actors) -> None:  # type: ignore[no-untyped-def]
    """3 × 333 at 20 %: the sale took 199 (not 3 × 66); refunding unit by unit gives back
    66 + 67 + 66, so the publisher and the platform both end at exactly zero."""
    listing = await store.listing(price=333)
    buyer = await actors.create()
    bought = await completed_order(runtime, buyer, [(listing, 333, 3, "physical")])
    publisher = accounts.publisher_earnings(uuid.UUID(listing["publisher"]["id"]))
    assert (await balance(runtime, publisher), await balance(runtime, accounts.PLATFORM_REVENUE)) == (800, 199)
    for _ in range(3):
        response = await ask(client, buyer, bought, lines=[{"line_id": bought.line_ids[0], "quantity": 1}])
        assert response.status_code == 201, response.text
        approved = await client.post(f"{V1}/refunds/{response.json()['id']}/approve", headers=store.admin.headers)
        assert approved.status_code == 200, approved.text
        await settled(client, buyer, response.json()["id"])
    assert await balance(runtime, publisher) == 0
    assert await balance(runtime, accounts.PLATFORM_REVENUE) == 0
    await assert_money_invariants(runtime.db)


async def test_concurrent_refunds_of_the_same_order_refund_once(
        client: httpx.AsyncClient, runtime: Runtime, store: Store, actors) -> None:  # type: ignore[no-untyped-def]
    listing = await store.listing(price=2000)
    buyer = await actors.create()
    bought = await completed_order(runtime, buyer, [(listing, 2000, 1, "digital")])
    responses = await asyncio.gather(*(ask(client, buyer, bought) for _ in range(8)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses.count(201) == 1 and set(statuses) == {201, 409}, statuses
    refund_id = next(r.json()["id"] for r in responses if r.status_code == 201)
    await settled(client, buyer, refund_id)
    assert await balance(runtime, accounts.user_wallet(uuid.UUID(buyer.id))) == 2000
    await assert_money_invariants(runtime.db)


async def test_no_refund_after_the_window(client: httpx.AsyncClient, runtime: Runtime, store: Store,
                                          actors) -> None:  # type: ignore[no-untyped-def]
    listing = await store.listing(price=700)
    buyer = await actors.create()
    bought = await completed_order(runtime, buyer, [(listing, 700, 1, "digital")], completed_days_ago=15)
    response = await ask(client, buyer, bought)
    assert response.status_code == 409 and response.json()["code"] == "refund_window_closed"
    async with runtime.db.read_session() as session:
        from sqlalchemy import func, select

        from mercato.models import Refund
        assert await session.scalar(select(func.count()).select_from(Refund)) == 0


async def test_nobody_else_refunds_or_decides(client: httpx.AsyncClient, runtime: Runtime, store: Store,
                                              actors) -> None:  # type: ignore[no-untyped-def]
    listing = await store.listing(price=1200)
    buyer, stranger = await actors.create(), await actors.create()
    bought = await completed_order(runtime, buyer, [(listing, 1200, 1, "digital")])
    assert (await ask(client, stranger, bought)).status_code == 404
    await downloaded(runtime, buyer, listing["id"], times=9)
    refund_id = (await ask(client, buyer, bought)).json()["id"]
    other_dev = await actors.create()
    await actors.publisher(other_dev)
    for who in (stranger, other_dev):
        decided = await client.post(f"{V1}/refunds/{refund_id}/approve", headers=who.headers)
        assert decided.status_code in (403, 404), decided.text
        seen = await client.get(f"{V1}/refunds/{refund_id}", headers=who.headers)
        assert seen.status_code in (403, 404)
    assert (await client.post(f"{V1}/refunds/{refund_id}/approve", headers=buyer.headers)).status_code in (403, 404)


async def test_refunds_need_an_idempotency_key_and_replay_the_first_answer(
        client: httpx.AsyncClient, runtime: Runtime, store: Store, actors) -> None:  # type: ignore[no-untyped-def]
    listing = await store.listing(price=400)
    buyer = await actors.create()
    bought = await completed_order(runtime, buyer, [(listing, 400, 1, "digital")])
    missing = await client.post(f"{V1}/orders/{bought.order_id}/refunds", headers=buyer.headers,
                                json={"reason": "Changed my mind"})
    assert missing.status_code == 400
    first = await client.post(f"{V1}/orders/{bought.order_id}/refunds", headers=keyed(buyer, "refund-1"),
                              json={"reason": "Changed my mind"})
    replay = await client.post(f"{V1}/orders/{bought.order_id}/refunds", headers=keyed(buyer, "refund-1"),
                               json={"reason": "Changed my mind"})
    assert first.status_code == replay.status_code == 201 and first.json()["id"] == replay.json()["id"]
    await settled(client, buyer, first.json()["id"])
    assert await balance(runtime, accounts.user_wallet(uuid.UUID(buyer.id))) == 400


async def _order_status(runtime: Runtime, order_id: str) -> tuple[str, int]:
    from mercato.models import Order

    async with runtime.db.read_session() as session:
        order = await session.get(Order, uuid.UUID(order_id))
        assert order is not None
        return order.status, order.refunded_amount


async def test_nothing_is_refunded_twice_one_request_after_the_other(
        client: httpx.AsyncClient, runtime: Runtime, store: Store, actors) -> None:  # type: ignore[no-untyped-def]
    listing = await store.listing(price=1500)
    buyer = await actors.create()
    bought = await completed_order(runtime, buyer, [(listing, 1500, 1, "digital")])
    first = await ask(client, buyer, bought)
    assert first.status_code == 201 and first.json()["status"] == "approved", first.text
    await settled(client, buyer, first.json()["id"])
    for body in ({}, {"lines": [{"line_id": bought.line_ids[0], "quantity": 1}]}):
        again = await ask(client, buyer, bought, **body)
        assert again.status_code == 409 and again.json()["code"] == "order_not_refundable", again.text
    for verb, body in (("approve", {}), ("reject", {"reason": "Too late now"})):
        decided = await client.post(f"{V1}/refunds/{first.json()['id']}/{verb}", headers=store.admin.headers,
                                    json=body)
        assert decided.status_code == 409 and decided.json()["code"] == "invalid_transition", decided.text
    assert await balance(runtime, accounts.user_wallet(uuid.UUID(buyer.id))) == 1500
    assert await _order_status(runtime, bought.order_id) == ("refunded", 1500)
    await assert_money_invariants(runtime.db)


async def test_two_pending_requests_for_the_same_units_refund_them_once(
        client: httpx.AsyncClient, runtime: Runtime, store: Store, actors) -> None:  # type: ignore[no-untyped-def]
    listing = await store.listing(price=1800)
    buyer = await actors.create()
    bought = await completed_order(runtime, buyer, [(listing, 1800, 1, "physical")])
    # a physical line waits for the publisher, so both requests are pending at once
    first, second = await ask(client, buyer, bought), await ask(client, buyer, bought)
    assert (first.json()["status"], second.json()["status"]) == ("requested", "requested")
    approved = await client.post(f"{V1}/refunds/{first.json()['id']}/approve", headers=store.developer.headers,
                                 json={})
    assert approved.status_code == 200, approved.text
    twice = await client.post(f"{V1}/refunds/{second.json()['id']}/approve", headers=store.developer.headers,
                              json={})
    assert twice.status_code == 409 and twice.json()["code"] == "already_refunded", twice.text
    await settled(client, buyer, first.json()["id"])
    assert (await client.get(f"{V1}/refunds/{second.json()['id']}", headers=buyer.headers)).json()["status"] == \
        "requested"
    assert await balance(runtime, accounts.user_wallet(uuid.UUID(buyer.id))) == 1800
    assert await _order_status(runtime, bought.order_id) == ("refunded", 1800)
    await assert_money_invariants(runtime.db)
