"""Licence key pools (M12) and signed licence documents (L1): uploads and their counts,
handing keys out one per order line (distinct under concurrency, idempotent, a clean
refusal when the pool is empty) and the offline-verifiable licence of an entitlement."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from mercato.app.runtime import Runtime
from mercato.kit.clock import utcnow
from mercato.kit.keys import verify_document
from mercato.library import service as library
from mercato.licences.errors import KeyPoolEmpty, OrderLineNotFound
from mercato.models import AuditEntry, LicenceKey, Order, OrderLine
from mercato.orders.grant import assign_key
from mercato.wallet import service as wallet
from tests.catalog.support import Shop
from tests.support.actors import Actor, Actors
from tests.support.invariants import assert_money_invariants

V1 = "/api/v1"


async def paid_listing(shop: Shop, price: int = 1500) -> dict[str, Any]:
    return await shop.listing(offers=[{"delivery": "digital", "price": {"amount": price, "currency": "USD"}}])


async def upload(client: httpx.AsyncClient, actor: Actor, listing: str, keys: list[Any]) -> httpx.Response:
    return await client.post(f"{V1}/listings/{listing}/keys", headers=actor.headers, json={"keys": keys})


async def order_lines(runtime: Runtime, listing: dict[str, Any], user_id: str, count: int = 1) -> list[uuid.UUID]:
    """``count`` paid orders of one line each, straight in the database, with the buyer's
    money in escrow as the saga leaves a paid order (so completing it settles cleanly)."""
    lines = []
    async with runtime.db.transaction() as session:
        for _ in range(count):
            order = Order(id=uuid.uuid4(), user_id=uuid.UUID(user_id), idempotency_key=uuid.uuid4().hex,
                          status="paid", currency="USD", subtotal=1500, total=1500, commission_bps=1000,
                          refund_window_days=14, expires_at=utcnow() + timedelta(hours=1), paid_at=utcnow())
            line = OrderLine(id=uuid.uuid4(), order_id=order.id, position=0, listing_id=uuid.UUID(listing["id"]),
                             publisher_id=uuid.UUID(listing["publisher"]["id"]), title=listing["name"],
                             delivery="digital", quantity=1, unit_price=1500, total=1500)
            session.add(order)
            await session.flush()
            session.add(line)
            await wallet.credit_payment(session, payment_id=uuid.uuid4(), user_id=order.user_id, provider="sandbox",
                                        amount=order.total, currency="USD")
            await wallet.debit_order(session, order_id=order.id, user_id=order.user_id, amount=order.total,
                                     currency="USD")
            lines.append(line.id)
    return lines


async def assign(runtime: Runtime, listing: dict[str, Any], line_id: uuid.UUID) -> str | None:
    async with runtime.db.transaction() as session:
        key = await assign_key(session, listing_id=uuid.UUID(listing["id"]), order_line_id=line_id)
        return None if key is None else key.key


async def key_rows(runtime: Runtime, listing: dict[str, Any]) -> list[tuple[str, uuid.UUID | None]]:
    async with runtime.db.read_session() as session:
        return list((await session.execute(select(LicenceKey.key, LicenceKey.order_line_id).where(
            LicenceKey.listing_id == uuid.UUID(listing["id"])).order_by(LicenceKey.key))).all())


async def line_key_ids(runtime: Runtime, line_ids: list[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID | None]:
    async with runtime.db.read_session() as session:
        return dict((await session.execute(select(OrderLine.id, OrderLine.licence_key_id).where(
            OrderLine.id.in_(line_ids)))).all())


# --- uploads and counts ------------------------------------------------------------------------

async def test_a_publisher_uploads_keys_and_duplicates_are_skipped_and_counted(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime) -> None:
    shop = await Shop.open(client, actors)
    listing = await paid_listing(shop)
    first = await upload(client, shop.developer, listing["slug"], ["AAAA-1", "AAAA-2", "AAAA-2", "  AAAA-3 "])
    assert first.status_code == 201, first.text
    assert first.json() == {"added": 3, "skipped": 1, "free": 3, "assigned": 0}
    again = await upload(client, shop.developer, listing["id"], ["AAAA-1", "AAAA-4"])
    assert again.json() == {"added": 1, "skipped": 1, "free": 4, "assigned": 0}
    counts = await client.get(f"{V1}/listings/{listing['id']}/keys", headers=shop.developer.headers)
    assert counts.status_code == 200
    assert counts.json() == {"listing_id": listing["id"], "total": 4, "free": 4, "assigned": 0}
    assert "AAAA" not in counts.text
    assert [key for key, _ in await key_rows(runtime, listing)] == ["AAAA-1", "AAAA-2", "AAAA-3", "AAAA-4"]
    await assert_money_invariants(runtime.db)


async def test_an_upload_is_audited_without_the_keys(client: httpx.AsyncClient, actors: Actors,
                                                    runtime: Runtime) -> None:
    shop = await Shop.open(client, actors)
    listing = await paid_listing(shop)
    assert (await upload(client, shop.admin, listing["slug"], ["SECRET-KEY-1", "SECRET-KEY-2"])).status_code == 201
    async with runtime.db.read_session() as session:
        entries = list(await session.scalars(select(AuditEntry).where(AuditEntry.action == "licence_key:upload")))
    assert len(entries) == 1
    assert entries[0].resource_id == listing["id"] and entries[0].after["added"] == 2
    assert "SECRET-KEY" not in json.dumps([entries[0].before, entries[0].after])


@pytest.mark.parametrize("keys", [
    pytest.param([], id="no-keys"),
    pytest.param(["ok", ""], id="empty-key"),
    pytest.param(["   "], id="blank-key"),
    pytest.param(["x" * 501], id="too-long"),
    pytest.param(["line\nbreak"], id="control-character"),
    pytest.param([12345], id="not-a-string"),
    pytest.param([f"K-{n}" for n in range(1001)], id="too-many"),
])
async def test_bad_keys_are_refused_with_422_and_change_nothing(client: httpx.AsyncClient, actors: Actors,
                                                               runtime: Runtime, keys: list[Any]) -> None:
    shop = await Shop.open(client, actors)
    listing = await paid_listing(shop)
    response = await upload(client, shop.developer, listing["slug"], keys)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_failed"
    assert "x" * 50 not in response.text  # the key is never echoed
    assert await key_rows(runtime, listing) == []


async def test_a_thousand_keys_fit_in_one_upload(client: httpx.AsyncClient, actors: Actors, runtime: Runtime) -> None:
    shop = await Shop.open(client, actors)
    listing = await paid_listing(shop)
    response = await upload(client, shop.developer, listing["slug"], [f"K-{n:04d}-{'z' * 480}" for n in range(1000)])
    assert response.status_code == 201, response.text
    assert response.json()["added"] == 1000


async def test_other_publishers_get_404_and_plain_users_403_and_anonymous_401(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime) -> None:
    shop = await Shop.open(client, actors)
    listing = await paid_listing(shop)
    other = await Shop.open(client, actors)
    for method in ("GET", "POST"):
        url = f"{V1}/listings/{listing['id']}/keys"
        body = {"keys": ["K-1"]} if method == "POST" else None
        assert (await client.request(method, url, headers=other.developer.headers, json=body)).status_code == 404
        assert (await client.request(method, url, headers=(await actors.create()).headers,
                                     json=body)).status_code == 403
        assert (await client.request(method, url, json=body)).status_code == 401
    missing = await client.get(f"{V1}/listings/{uuid.uuid4()}/keys", headers=shop.developer.headers)
    assert missing.status_code == 404 and missing.json()["code"] == "listing_not_found"
    assert await key_rows(runtime, listing) == []


# --- handing keys out --------------------------------------------------------------------------

async def test_a_listing_without_a_pool_hands_out_nothing(client: httpx.AsyncClient, actors: Actors,
                                                          runtime: Runtime) -> None:
    shop = await Shop.open(client, actors)
    listing = await paid_listing(shop)
    buyer = await actors.create()
    [line] = await order_lines(runtime, listing, buyer.id)
    assert await assign(runtime, listing, line) is None
    assert (await line_key_ids(runtime, [line]))[line] is None
    await assert_money_invariants(runtime.db)


async def test_the_same_order_line_always_gets_the_same_key(client: httpx.AsyncClient, actors: Actors,
                                                            runtime: Runtime) -> None:
    shop = await Shop.open(client, actors)
    listing = await paid_listing(shop)
    await upload(client, shop.developer, listing["slug"], ["K-1", "K-2", "K-3"])
    buyer = await actors.create()
    [line] = await order_lines(runtime, listing, buyer.id)
    first = await assign(runtime, listing, line)
    assert first == "K-1"  # oldest first
    assert await assign(runtime, listing, line) == first
    rows = dict(await key_rows(runtime, listing))
    assert rows == {"K-1": line, "K-2": None, "K-3": None}
    async with runtime.db.read_session() as session:
        key_id = await session.scalar(select(LicenceKey.id).where(LicenceKey.order_line_id == line))
    assert (await line_key_ids(runtime, [line]))[line] == key_id
    counts = await client.get(f"{V1}/listings/{listing['id']}/keys", headers=shop.developer.headers)
    assert counts.json() == {"listing_id": listing["id"], "total": 3, "free": 2, "assigned": 1}
    await assert_money_invariants(runtime.db)


async def test_an_empty_pool_refuses_and_changes_nothing(client: httpx.AsyncClient, actors: Actors,
                                                         runtime: Runtime) -> None:
    shop = await Shop.open(client, actors)
    listing = await paid_listing(shop)
    await upload(client, shop.developer, listing["slug"], ["ONLY-ONE"])
    buyer = await actors.create()
    first, second = await order_lines(runtime, listing, buyer.id, count=2)
    assert await assign(runtime, listing, first) == "ONLY-ONE"
    before = await key_rows(runtime, listing)
    with pytest.raises(KeyPoolEmpty) as refused:
        await assign(runtime, listing, second)
    assert refused.value.status == 409 and refused.value.code == "key_pool_empty"
    assert await key_rows(runtime, listing) == before
    assert (await line_key_ids(runtime, [second]))[second] is None
    await assert_money_invariants(runtime.db)


async def test_a_line_of_another_listing_gets_no_key(client: httpx.AsyncClient, actors: Actors,
                                                  runtime: Runtime) -> None:
    shop = await Shop.open(client, actors)
    listing, other = await paid_listing(shop), await paid_listing(shop)
    await upload(client, shop.developer, listing["slug"], ["K-1"])
    buyer = await actors.create()
    [line] = await order_lines(runtime, other, buyer.id)
    with pytest.raises(OrderLineNotFound):
        await assign(runtime, listing, line)
    with pytest.raises(OrderLineNotFound):
        await assign(runtime, listing, uuid.uuid4())
    assert await key_rows(runtime, listing) == [("K-1", None)]


async def test_fifty_concurrent_buyers_get_fifty_distinct_keys(client: httpx.AsyncClient, actors: Actors,
                                                               runtime: Runtime) -> None:
    shop = await Shop.open(client, actors)
    listing = await paid_listing(shop)
    await upload(client, shop.developer, listing["slug"], [f"KEY-{n:03d}" for n in range(60)])
    buyer = await actors.create()
    lines = await order_lines(runtime, listing, buyer.id, count=50)
    keys = await asyncio.gather(*(assign(runtime, listing, line) for line in lines))
    assert None not in keys and len(set(keys)) == 50
    owners = [owner for _, owner in await key_rows(runtime, listing) if owner is not None]
    assert sorted(map(str, owners)) == sorted(map(str, lines))
    assert None not in (await line_key_ids(runtime, lines)).values()
    await assert_money_invariants(runtime.db)


async def test_concurrent_buyers_beyond_the_pool_are_refused_cleanly(client: httpx.AsyncClient, actors: Actors,
                                                                     runtime: Runtime) -> None:
    shop = await Shop.open(client, actors)
    listing = await paid_listing(shop)
    await upload(client, shop.developer, listing["slug"], [f"KEY-{n:03d}" for n in range(30)])
    buyer = await actors.create()
    lines = await order_lines(runtime, listing, buyer.id, count=50)
    outcomes = await asyncio.gather(*(assign(runtime, listing, line) for line in lines), return_exceptions=True)
    handed = [key for key in outcomes if isinstance(key, str)]
    refused = [error for error in outcomes if isinstance(error, KeyPoolEmpty)]
    assert len(handed) == 30 and len(set(handed)) == 30 and len(refused) == 20, outcomes
    linked = [key_id for key_id in (await line_key_ids(runtime, lines)).values() if key_id is not None]
    assert len(linked) == 30
    async with runtime.db.read_session() as session:
        free = await session.scalar(select(func.count(LicenceKey.id)).where(
            LicenceKey.listing_id == uuid.UUID(listing["id"]), LicenceKey.order_line_id.is_(None)))
    assert free == 0
    await assert_money_invariants(runtime.db)


# --- licence documents -------------------------------------------------------------------------

async def entitle(runtime: Runtime, user_id: str, listing: dict[str, Any], order_id: uuid.UUID | None = None,
                  source: str = "purchase") -> None:
    async with runtime.db.transaction() as session:
        await library.grant(session, user_id=uuid.UUID(user_id), listing_id=uuid.UUID(listing["id"]),
                            source=source, order_id=order_id)


async def order_of(runtime: Runtime, line_id: uuid.UUID) -> uuid.UUID:
    async with runtime.db.read_session() as session:
        order_id = await session.scalar(select(OrderLine.order_id).where(OrderLine.id == line_id))
    assert order_id is not None
    return order_id


async def public_keys(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get(f"{V1}/keys")
    assert response.status_code == 200
    return response.json()["keys"]  # type: ignore[no-any-return]


async def test_an_entitled_buyer_gets_a_signed_licence_with_their_key(client: httpx.AsyncClient, actors: Actors,
                                                                      runtime: Runtime) -> None:
    shop = await Shop.open(client, actors)
    listing = await paid_listing(shop)
    await upload(client, shop.developer, listing["slug"], ["LIC-1", "LIC-2"])
    buyer = await actors.create()
    [line] = await order_lines(runtime, listing, buyer.id)
    key = await assign(runtime, listing, line)
    order_id = await order_of(runtime, line)
    await entitle(runtime, buyer.id, listing, order_id)
    response = await client.get(f"{V1}/library/{listing['id']}/license", headers=buyer.headers)
    assert response.status_code == 200, response.text
    assert "no-store" in response.headers["cache-control"]
    document = response.json()
    licence = document["licence"]
    assert licence["listing_id"] == listing["id"] and licence["listing_slug"] == listing["slug"]
    assert licence["user_id"] == buyer.id and licence["order_id"] == str(order_id)
    assert licence["key"] == key == "LIC-1" and licence["expires_at"] is None
    keys = await public_keys(client)
    assert document["key_id"] == keys[0]["id"]
    assert verify_document(document, keys)
    # stable: the same document on every request
    again = await client.get(f"{V1}/library/{listing['id']}/license", headers=buyer.headers)
    assert again.json() == document
    await assert_money_invariants(runtime.db)


@pytest.mark.parametrize("change", [
    pytest.param(("licence", "user_id", str(uuid.UUID(int=7))), id="user"),
    pytest.param(("licence", "key", "LIC-FORGED"), id="key"),
    pytest.param(("licence", "expires_at", "2099-01-01T00:00:00Z"), id="expiry"),
    pytest.param(("licence", "issued_at", "2020-01-01T00:00:00Z"), id="issued"),
    pytest.param((None, "key_id", "0000000000000000"), id="key-id"),
])
async def test_a_modified_licence_fails_verification(client: httpx.AsyncClient, actors: Actors, runtime: Runtime,
                                                      change: tuple[str | None, str, str]) -> None:
    shop = await Shop.open(client, actors)
    listing = await paid_listing(shop)
    await upload(client, shop.developer, listing["slug"], ["LIC-1"])
    buyer = await actors.create()
    [line] = await order_lines(runtime, listing, buyer.id)
    await assign(runtime, listing, line)
    await entitle(runtime, buyer.id, listing, await order_of(runtime, line))
    document = (await client.get(f"{V1}/library/{listing['id']}/license", headers=buyer.headers)).json()
    keys = await public_keys(client)
    assert verify_document(document, keys)
    section, field, value = change
    (document[section] if section else document)[field] = value
    assert not verify_document(document, keys)


async def test_an_admin_grant_gets_a_licence_without_a_key(client: httpx.AsyncClient, actors: Actors,
                                                           runtime: Runtime) -> None:
    shop = await Shop.open(client, actors)
    listing = await paid_listing(shop)
    await upload(client, shop.developer, listing["slug"], ["LIC-1"])
    user = await actors.create()
    await entitle(runtime, user.id, listing, source="admin")
    document = (await client.get(f"{V1}/library/{listing['id']}/license", headers=user.headers)).json()
    assert document["licence"]["key"] is None and document["licence"]["order_id"] is None
    assert verify_document(document, await public_keys(client))
    # the pool is untouched: admin grants take no key
    assert [owner for _, owner in await key_rows(runtime, listing)] == [None]


async def test_no_licence_without_an_active_entitlement(client: httpx.AsyncClient, actors: Actors,
                                                        runtime: Runtime) -> None:
    shop = await Shop.open(client, actors)
    listing = await paid_listing(shop)
    buyer, stranger = await actors.create(), await actors.create()
    await entitle(runtime, buyer.id, listing)
    url = f"{V1}/library/{listing['id']}/license"
    refused = await client.get(url, headers=stranger.headers)
    assert refused.status_code == 404 and refused.json()["code"] == "not_entitled"
    assert (await client.get(url)).status_code == 401
    unknown = await client.get(f"{V1}/library/{uuid.uuid4()}/license", headers=buyer.headers)
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_entitled"
    assert (await client.get(f"{V1}/library/not-a-uuid/license", headers=buyer.headers)).status_code == 422
    async with runtime.db.transaction() as session:
        await library.revoke(session, user_id=uuid.UUID(buyer.id), listing_id=uuid.UUID(listing["id"]),
                             reason="refunded")
    revoked = await client.get(url, headers=buyer.headers)
    assert revoked.status_code == 404 and revoked.json()["code"] == "not_entitled"


async def test_a_refund_leaves_the_key_with_its_buyer(client: httpx.AsyncClient, actors: Actors,
                                                      runtime: Runtime) -> None:
    """Keys are never released: the revoked buyer keeps theirs, the next buyer gets another."""
    shop = await Shop.open(client, actors)
    listing = await paid_listing(shop)
    await upload(client, shop.developer, listing["slug"], ["LIC-1", "LIC-2"])
    buyer, next_buyer = await actors.create(), await actors.create()
    [line] = await order_lines(runtime, listing, buyer.id)
    assert await assign(runtime, listing, line) == "LIC-1"
    async with runtime.db.transaction() as session:
        await library.revoke(session, user_id=uuid.UUID(buyer.id), listing_id=uuid.UUID(listing["id"]),
                             reason="refunded")
    [next_line] = await order_lines(runtime, listing, next_buyer.id)
    assert await assign(runtime, listing, next_line) == "LIC-2"
    assert dict(await key_rows(runtime, listing))["LIC-1"] == line
    await assert_money_invariants(runtime.db)
