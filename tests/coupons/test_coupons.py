"""M8 coupons: CRUD and scopes through the API; quote, redeem and release through the
service the orders module calls (orders arranged as rows); and checkout with a coupon end
to end through the API: the discount frozen in the order, the ledger, the publisher's
earnings and the commission on the discounted price, the limits enforced, also under
concurrent checkouts."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from mercato.app.runtime import Runtime
from mercato.coupons import service as coupons
from mercato.coupons.errors import (
    CouponExhausted,
    CouponInvalid,
    CouponLimitReached,
    CouponNotApplicable,
)
from mercato.coupons.service import QuoteLine
from mercato.kit.clock import utcnow
from mercato.models import AuditEntry, Coupon, CouponRedemption, Order
from tests.catalog.support import Shop
from tests.library.support import publish_listing
from tests.support.actors import Actor, Actors
from tests.support.invariants import assert_money_invariants
from tests.support.orders import (
    Seller,
    account_balance,
    balance,
    fund,
    item,
    order_of,
    place,
    quiet,
)

V1 = "/api/v1"
PAID = [{"delivery": "digital", "price": {"amount": 1000, "currency": "USD"}}]


def code() -> str:
    return f"SAVE-{uuid.uuid4().hex[:8].upper()}"


async def create(client: httpx.AsyncClient, who: Actor, **body: Any) -> httpx.Response:
    return await client.post(f"{V1}/coupons", headers=who.headers, json={"code": code(), "kind": "percent",
                                                                         "value": 10, **body})


async def created(client: httpx.AsyncClient, who: Actor, **body: Any) -> dict[str, Any]:
    response = await create(client, who, **body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def an_order(runtime: Runtime, user_id: str) -> uuid.UUID:
    """An order row for a redemption to point at."""
    order_id = uuid.uuid4()
    async with runtime.db.transaction() as session:
        session.add(Order(id=order_id, user_id=uuid.UUID(user_id), idempotency_key=str(order_id), status="created",
                          currency="USD", subtotal=1000, discount=0, total=1000, commission_bps=2000,
                          refund_window_days=14, expires_at=utcnow() + timedelta(minutes=15)))
    return order_id


async def coupon_row(runtime: Runtime, coupon_id: str) -> Coupon:
    async with runtime.db.read_session() as session:
        found = await session.scalar(select(Coupon).where(Coupon.id == uuid.UUID(coupon_id)))
        assert found is not None
        return found


@pytest.fixture
async def shop(client: httpx.AsyncClient, actors: Actors) -> Shop:
    return await Shop.open(client, actors)


# --- creating and listing ------------------------------------------------------------------------

async def test_a_member_creates_a_listing_coupon_stored_upper_case_and_audited(
        client: httpx.AsyncClient, runtime: Runtime, shop: Shop) -> None:
    listing = await shop.listing(offers=PAID)
    coupon = await created(client, shop.developer, code="spring-sale", scope="listing", listing_id=listing["id"],
                           max_redemptions=100, per_user_limit=1)
    assert (coupon["code"], coupon["scope"], coupon["listing_id"], coupon["currency"], coupon["redemptions"]) == (
        "SPRING-SALE", "listing", listing["id"], "USD", 0)
    assert coupon["publisher_id"] == listing["publisher"]["id"]
    async with runtime.db.read_session() as session:
        audited = await session.scalar(select(AuditEntry).where(AuditEntry.action == "coupon:create",
                                                                AuditEntry.resource_id == coupon["id"]))
    assert audited is not None and audited.after["code"] == "SPRING-SALE"
    await assert_money_invariants(runtime.db)


async def test_a_code_in_use_is_refused_whatever_its_case(client: httpx.AsyncClient, runtime: Runtime,
                                                          shop: Shop) -> None:
    body = {"scope": "publisher", "publisher": shop.publisher}
    await created(client, shop.developer, code="TAKEN-1", **body)
    again = await create(client, shop.developer, code="taken-1", **body)
    assert again.status_code == 409 and again.json()["code"] == "coupon_code_taken"
    await assert_money_invariants(runtime.db)


@pytest.mark.parametrize("body", [
    {"code": "ab"}, {"code": "no spaces"}, {"code": "Ü-NICODE"}, {"code": "X" * 65},
    {"kind": "percent", "value": 101}, {"value": 0}, {"kind": "free"},
    {"scope": "publisher"}, {"scope": "listing"}, {"scope": "galaxy"},
    {"starts_at": "2030-01-02T00:00:00Z", "ends_at": "2030-01-01T00:00:00Z"},
    {"ends_at": "2030-01-01T00:00:00"}, {"max_redemptions": 0}, {"per_user_limit": -1}, {"surprise": True},
], ids=["short", "space", "unicode", "long", "percent-over-100", "zero", "kind", "publisher-missing",
        "listing-missing", "scope", "ends-before-start", "naive-time", "max-zero", "per-user-negative", "extra"])
async def test_invalid_coupons_are_refused_with_422(client: httpx.AsyncClient, runtime: Runtime, admin: Actor,
                                                    body: dict[str, Any]) -> None:
    response = await create(client, admin, **{"scope": "store", **body})
    assert response.status_code == 422, response.text
    listed = await client.get(f"{V1}/coupons", headers=admin.headers, params={"total": "true"})
    assert listed.json()["total"] == 0
    await assert_money_invariants(runtime.db)


async def test_a_publisher_cannot_create_store_wide_or_other_publishers_coupons(
        client: httpx.AsyncClient, runtime: Runtime, actors: Actors, shop: Shop) -> None:
    other = await Shop.open(client, actors)
    published = await other.listing(offers=PAID)
    await publish_listing(runtime, published["id"])
    draft = await other.listing(offers=PAID)
    dev = shop.developer
    assert (await create(client, dev, scope="store")).status_code == 403
    assert (await create(client, dev, scope="publisher", publisher=other.publisher)).status_code == 403
    assert (await create(client, dev, scope="listing", listing_id=published["id"])).status_code == 403
    assert (await create(client, dev, scope="listing", listing_id=draft["id"])).status_code == 404
    assert (await create(client, dev, scope="publisher", publisher="no-such-publisher")).status_code == 404
    plain = await actors.create()
    assert (await create(client, plain, scope="store")).status_code == 403
    assert (await client.get(f"{V1}/coupons", headers=dev.headers)).json()["items"] == []
    await assert_money_invariants(runtime.db)


async def test_publishers_see_their_own_coupons_and_admins_all(client: httpx.AsyncClient, runtime: Runtime,
                                                               actors: Actors, shop: Shop, admin: Actor) -> None:
    other = await Shop.open(client, actors)
    mine = await created(client, shop.developer, scope="publisher", publisher=shop.publisher)
    theirs = await created(client, other.developer, scope="publisher", publisher=other.publisher)
    store = await created(client, admin, scope="store", kind="fixed", value=500)
    seen = {c["id"] for c in (await client.get(f"{V1}/coupons", headers=shop.developer.headers)).json()["items"]}
    assert seen == {mine["id"]}
    everything = (await client.get(f"{V1}/coupons", headers=admin.headers, params={"limit": 100})).json()["items"]
    assert {mine["id"], theirs["id"], store["id"]} <= {c["id"] for c in everything}
    filtered = (await client.get(f"{V1}/coupons", headers=admin.headers,
                                 params={"publisher": other.publisher})).json()["items"]
    assert [c["id"] for c in filtered] == [theirs["id"]]
    first = (await client.get(f"{V1}/coupons", headers=admin.headers, params={"limit": 2})).json()
    second = (await client.get(f"{V1}/coupons", headers=admin.headers,
                               params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert len({c["id"] for c in first["items"] + second["items"]}) == 3
    await assert_money_invariants(runtime.db)


# --- changing --------------------------------------------------------------------------------------

async def test_patch_changes_limits_and_is_audited(client: httpx.AsyncClient, runtime: Runtime, shop: Shop) -> None:
    coupon = await created(client, shop.developer, scope="publisher", publisher=shop.publisher, max_redemptions=3)
    response = await client.patch(f"{V1}/coupons/{coupon['id']}", headers=shop.developer.headers, json={
        "active": False, "ends_at": "2031-01-01T00:00:00Z", "max_redemptions": None, "per_user_limit": 2,
        "code": "renamed-code", "value": 25})
    assert response.status_code == 200, response.text
    changed = response.json()
    assert (changed["active"], changed["ends_at"][:10], changed["max_redemptions"], changed["per_user_limit"],
            changed["code"], changed["value"]) == (False, "2031-01-01", None, 2, "RENAMED-CODE", 25)
    async with runtime.db.read_session() as session:
        audited = await session.scalar(select(AuditEntry).where(AuditEntry.action == "coupon:update",
                                                                AuditEntry.resource_id == coupon["id"]))
    assert audited is not None and audited.before["max_redemptions"] == 3 and audited.after["active"] is False
    await assert_money_invariants(runtime.db)


async def test_a_redeemed_coupon_keeps_code_kind_and_value_and_its_limit_stays_above_redemptions(
        client: httpx.AsyncClient, runtime: Runtime, actors: Actors, shop: Shop, user: Actor) -> None:
    coupon = await created(client, shop.developer, scope="publisher", publisher=shop.publisher, max_redemptions=5)
    for _ in range(2):
        async with runtime.db.transaction() as session:
            await coupons.redeem(session, coupon_id=uuid.UUID(coupon["id"]), user_id=uuid.UUID(user.id),
                                 order_id=await an_order(runtime, user.id))
    url, headers = f"{V1}/coupons/{coupon['id']}", shop.developer.headers
    for body in ({"code": "OTHER-CODE"}, {"kind": "fixed"}, {"value": 50}):
        refused = await client.patch(url, headers=headers, json=body)
        assert refused.status_code == 409 and refused.json()["code"] == "coupon_redeemed", refused.text
    below = await client.patch(url, headers=headers, json={"max_redemptions": 1})
    assert below.status_code == 409 and below.json()["code"] == "coupon_limit_below_redemptions"
    assert (await client.patch(url, headers=headers, json={"max_redemptions": 2})).status_code == 200
    assert (await client.patch(url, headers=headers, json={"value": 10})).status_code == 200  # unchanged: fine
    other = await Shop.open(client, actors)
    assert (await client.patch(url, headers=other.developer.headers, json={"active": False})).status_code == 404
    assert (await client.patch(url, headers=headers, json={"active": None})).status_code == 422
    row = await coupon_row(runtime, coupon["id"])
    assert (row.code, row.value, row.max_redemptions, row.redemptions, row.active) == (
        coupon["code"], 10, 2, 2, True)
    await assert_money_invariants(runtime.db)


async def test_patch_to_a_taken_code_is_409(client: httpx.AsyncClient, runtime: Runtime, admin: Actor) -> None:
    first = await created(client, admin, scope="store", code="FIRST-CODE")
    second = await created(client, admin, scope="store")
    response = await client.patch(f"{V1}/coupons/{second['id']}", headers=admin.headers, json={"code": "first-code"})
    assert response.status_code == 409 and response.json()["code"] == "coupon_code_taken"
    assert first["code"] == "FIRST-CODE"
    await assert_money_invariants(runtime.db)


# --- quote ---------------------------------------------------------------------------------------

async def quoted(runtime: Runtime, code: str, user_id: str, lines: list[QuoteLine]) -> list[int]:
    async with runtime.db.read_session() as session:
        return (await coupons.quote(session, code=code, user_id=uuid.UUID(user_id), lines=lines)).line_discounts


async def test_quote_arithmetic(client: httpx.AsyncClient, runtime: Runtime, shop: Shop, admin: Actor,
                                user: Actor) -> None:
    listing = await shop.listing(offers=PAID)
    pub, lid, other_pub = uuid.UUID(listing["publisher"]["id"]), uuid.UUID(listing["id"]), uuid.uuid4()
    lines = [QuoteLine(lid, pub, 999), QuoteLine(uuid.uuid4(), other_pub, 1001), QuoteLine(uuid.uuid4(), pub, 3)]
    percent = await created(client, admin, scope="store", kind="percent", value=15)
    assert await quoted(runtime, percent["code"].lower(), user.id, lines) == [149, 150, 0]
    listing_percent = await created(client, shop.developer, scope="listing", listing_id=listing["id"], value=100)
    assert await quoted(runtime, listing_percent["code"], user.id, lines) == [999, 0, 0]
    fixed = await created(client, shop.developer, scope="publisher", publisher=shop.publisher, kind="fixed",
                          value=500)
    # 500 over 999 and 3 (eligible sum 1002): ⌊500·999/1002⌋ = 498, ⌊500·3/1002⌋ = 1, remainder 1 on the last
    assert await quoted(runtime, fixed["code"], user.id, lines) == [498, 0, 2]
    store_fixed = await created(client, admin, scope="store", kind="fixed", value=2)
    small = [QuoteLine(uuid.uuid4(), pub, 1), QuoteLine(uuid.uuid4(), pub, 1), QuoteLine(uuid.uuid4(), pub, 1)]
    # the remainder does not fit the last line (total 1): it goes on the ones before
    assert await quoted(runtime, store_fixed["code"], user.id, small) == [0, 1, 1]
    huge = await created(client, admin, scope="store", kind="fixed", value=100_000)
    assert await quoted(runtime, huge["code"], user.id, lines) == [999, 1001, 3]  # never below zero
    await assert_money_invariants(runtime.db)


async def test_quote_refusals(client: httpx.AsyncClient, runtime: Runtime, shop: Shop, admin: Actor,
                              user: Actor) -> None:
    listing = await shop.listing(offers=PAID)
    line = [QuoteLine(uuid.UUID(listing["id"]), uuid.UUID(listing["publisher"]["id"]), 1000)]
    elsewhere = [QuoteLine(uuid.uuid4(), uuid.uuid4(), 1000)]
    now = utcnow()
    cases = {
        "NO-SUCH-CODE": None,
        (await created(client, admin, scope="store", active=False))["code"]: "not active",
        (await created(client, admin, scope="store", starts_at=(now + timedelta(days=1)).isoformat()))["code"]:
            "valid from",
        (await created(client, admin, scope="store", ends_at=(now - timedelta(seconds=1)).isoformat()))["code"]:
            "ended",
    }
    for text, detail in cases.items():
        with pytest.raises(CouponInvalid) as refused:
            await quoted(runtime, text, user.id, line)
        assert refused.value.status == 422 and (detail is None or detail in refused.value.detail)
    scoped = await created(client, shop.developer, scope="listing", listing_id=listing["id"])
    with pytest.raises(CouponNotApplicable):
        await quoted(runtime, scoped["code"], user.id, elsewhere)
    with pytest.raises(CouponNotApplicable):  # a free line is nothing to discount
        await quoted(runtime, scoped["code"], user.id, [QuoteLine(line[0].listing_id, line[0].publisher_id, 0)])
    once = await created(client, admin, scope="store", per_user_limit=1)
    async with runtime.db.transaction() as session:
        await coupons.redeem(session, coupon_id=uuid.UUID(once["id"]), user_id=uuid.UUID(user.id),
                             order_id=await an_order(runtime, user.id))
    with pytest.raises(CouponLimitReached) as limited:
        await quoted(runtime, once["code"], user.id, line)
    assert limited.value.status == 409
    used_up = await created(client, admin, scope="store", max_redemptions=1)
    async with runtime.db.transaction() as session:
        await coupons.redeem(session, coupon_id=uuid.UUID(used_up["id"]), user_id=uuid.UUID(user.id),
                             order_id=await an_order(runtime, user.id))
    with pytest.raises(CouponExhausted):
        await quoted(runtime, used_up["code"], user.id, line)
    await assert_money_invariants(runtime.db)


# --- redeem and release --------------------------------------------------------------------------

async def test_thirty_concurrent_redemptions_of_a_five_use_coupon_yield_exactly_five(
        client: httpx.AsyncClient, runtime: Runtime, actors: Actors, admin: Actor) -> None:
    coupon = await created(client, admin, scope="store", max_redemptions=5)
    buyers = [await actors.create() for _ in range(3)]
    orders = [(buyers[i % 3].id, await an_order(runtime, buyers[i % 3].id)) for i in range(30)]

    async def attempt(user_id: str, order_id: uuid.UUID) -> bool:
        try:
            async with runtime.db.transaction() as session:
                await coupons.redeem(session, coupon_id=uuid.UUID(coupon["id"]), user_id=uuid.UUID(user_id),
                                     order_id=order_id)
            return True
        except CouponExhausted:
            return False

    outcomes = await asyncio.gather(*(attempt(u, o) for u, o in orders))
    assert outcomes.count(True) == 5
    row = await coupon_row(runtime, coupon["id"])
    assert row.redemptions == 5
    async with runtime.db.read_session() as session:
        rows = list(await session.scalars(select(CouponRedemption).where(
            CouponRedemption.coupon_id == uuid.UUID(coupon["id"]))))
    assert len(rows) == 5
    await assert_money_invariants(runtime.db)


async def test_per_user_limit_holds_at_redemption_and_a_repeat_for_the_same_order_counts_once(
        client: httpx.AsyncClient, runtime: Runtime, admin: Actor, user: Actor) -> None:
    coupon = await created(client, admin, scope="store", per_user_limit=2)
    coupon_id, user_id = uuid.UUID(coupon["id"]), uuid.UUID(user.id)
    first = await an_order(runtime, user.id)
    for order_id in (first, first, await an_order(runtime, user.id)):
        async with runtime.db.transaction() as session:
            await coupons.redeem(session, coupon_id=coupon_id, user_id=user_id, order_id=order_id)
    third = await an_order(runtime, user.id)
    with pytest.raises(CouponLimitReached):
        async with runtime.db.transaction() as session:
            await coupons.redeem(session, coupon_id=coupon_id, user_id=user_id, order_id=third)
    assert (await coupon_row(runtime, coupon["id"])).redemptions == 2
    await assert_money_invariants(runtime.db)


async def test_a_refusal_inside_the_callers_transaction_changes_nothing(
        client: httpx.AsyncClient, runtime: Runtime, admin: Actor, user: Actor) -> None:
    coupon = await created(client, admin, scope="store", per_user_limit=1)
    coupon_id, user_id = uuid.UUID(coupon["id"]), uuid.UUID(user.id)
    async with runtime.db.transaction() as session:
        await coupons.redeem(session, coupon_id=coupon_id, user_id=user_id, order_id=await an_order(runtime, user.id))
    second = await an_order(runtime, user.id)
    async with runtime.db.transaction() as session:  # the caller carries on after the refusal and commits
        with pytest.raises(CouponLimitReached):
            await coupons.redeem(session, coupon_id=coupon_id, user_id=user_id, order_id=second)
    assert (await coupon_row(runtime, coupon["id"])).redemptions == 1
    await assert_money_invariants(runtime.db)


async def test_release_gives_the_redemption_back_once(client: httpx.AsyncClient, runtime: Runtime, admin: Actor,
                                                      user: Actor) -> None:
    coupon = await created(client, admin, scope="store", max_redemptions=1, per_user_limit=1)
    coupon_id, user_id = uuid.UUID(coupon["id"]), uuid.UUID(user.id)
    lapsed = await an_order(runtime, user.id)
    async with runtime.db.transaction() as session:
        await coupons.redeem(session, coupon_id=coupon_id, user_id=user_id, order_id=lapsed)
    for _ in range(2):  # idempotent
        async with runtime.db.transaction() as session:
            await coupons.release(session, order_id=lapsed)
    assert (await coupon_row(runtime, coupon["id"])).redemptions == 0
    async with runtime.db.transaction() as session:  # usable again, by the same buyer
        await coupons.redeem(session, coupon_id=coupon_id, user_id=user_id, order_id=await an_order(runtime, user.id))
    async with runtime.db.transaction() as session:  # an order without a coupon: nothing
        await coupons.release(session, order_id=await an_order(runtime, user.id))
    assert (await coupon_row(runtime, coupon["id"])).redemptions == 1
    await assert_money_invariants(runtime.db)


async def test_an_inactive_coupon_cannot_be_redeemed(client: httpx.AsyncClient, runtime: Runtime, admin: Actor,
                                                     user: Actor) -> None:
    coupon = await created(client, admin, scope="store", active=False)
    with pytest.raises(CouponInvalid):
        async with runtime.db.transaction() as session:
            await coupons.redeem(session, coupon_id=uuid.UUID(coupon["id"]), user_id=uuid.UUID(user.id),
                                 order_id=await an_order(runtime, user.id))
    assert (await coupon_row(runtime, coupon["id"])).redemptions == 0
    await assert_money_invariants(runtime.db)


# --- checkout with a coupon, end to end through the API ----------------------------------------------

async def seller_coupon(client: httpx.AsyncClient, seller: Seller, **body: Any) -> dict[str, Any]:
    return await created(client, seller.developer, **{"scope": "publisher", "publisher": seller.slug, **body})


async def earned(client: httpx.AsyncClient, seller: Seller) -> dict[str, Any]:
    response = await client.get(f"{V1}/publishers/{seller.slug}/earnings", headers=seller.developer.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_a_checkout_with_a_coupon_freezes_the_discount_and_settles_the_discounted_price(
        client: httpx.AsyncClient, runtime: Runtime, actors: Actors, user: Actor) -> None:
    seller = await Seller.open(client, actors, runtime)
    app, other = await seller.listing(digital=1000), await seller.listing(digital=999)
    coupon = await created(client, seller.developer, scope="listing", listing_id=app["id"], kind="percent",
                           value=25, max_redemptions=10)
    await fund(runtime, user, 3000)
    response = await place(client, user, [item(app), item(other)], coupon=coupon["code"].lower(), wait=20)
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["status"] == "completed", order
    assert (order["subtotal"]["amount"], order["discount"]["amount"], order["total"]["amount"],
            order["coupon_code"]) == (1999, 250, 1749, coupon["code"])
    assert [(line["discount"]["amount"], line["total"]["amount"]) for line in order["lines"]] == [(250, 750),
                                                                                                 (0, 999)]
    await quiet(runtime)
    assert await balance(runtime, user) == 3000 - 1749
    # commission 20 % per line on what was paid: ⌊750·0.2⌋ = 150, ⌊999·0.2⌋ = 199
    assert await account_balance(runtime, "platform_revenue") == 150 + 199
    shown = await earned(client, seller)
    assert (shown["total_earned"]["amount"], shown["available"]["amount"]) == (600 + 800, 600 + 800)
    assert (await coupon_row(runtime, coupon["id"])).redemptions == 1
    async with runtime.db.read_session() as session:
        [redemption] = list(await session.scalars(select(CouponRedemption).where(
            CouponRedemption.coupon_id == uuid.UUID(coupon["id"]))))
    assert (str(redemption.order_id), str(redemption.user_id)) == (order["id"], user.id)

    # Frozen: changing the coupon afterwards changes neither the order nor its receipt.
    changed = await client.patch(f"{V1}/coupons/{coupon['id']}", headers=seller.developer.headers,
                                 json={"active": False})
    assert changed.status_code == 200, changed.text
    assert (await order_of(client, user, order["id"]))["discount"]["amount"] == 250
    receipt = await client.get(f"{V1}/orders/{order['id']}/receipt", headers=user.headers)
    assert receipt.status_code == 200, receipt.text
    assert (receipt.json()["discount"]["amount"], receipt.json()["total"]["amount"], receipt.json()["coupon"]) == (
        250, 1749, coupon["code"])
    await assert_money_invariants(runtime.db)


async def test_a_refund_of_a_discounted_line_gives_back_what_was_paid(
        client: httpx.AsyncClient, runtime: Runtime, actors: Actors, user: Actor) -> None:
    seller = await Seller.open(client, actors, runtime)
    app = await seller.listing(digital=2000)
    coupon = await seller_coupon(client, seller, kind="fixed", value=500)
    await fund(runtime, user, 1500)
    order = (await place(client, user, [item(app)], coupon=coupon["code"], wait=20)).json()
    assert (order["status"], order["total"]["amount"]) == ("completed", 1500), order
    await quiet(runtime)
    assert await balance(runtime, user) == 0
    refund = await client.post(f"{V1}/orders/{order['id']}/refunds", headers={**user.headers,
                                                                             "Idempotency-Key": uuid.uuid4().hex},
                               json={"reason": "Not what I expected"})
    assert refund.status_code == 201, refund.text
    assert refund.json()["amount"]["amount"] == 1500
    await quiet(runtime)
    assert await balance(runtime, user) == 1500  # what was paid, not the list price
    shown = await earned(client, seller)
    assert (shown["total_earned"]["amount"], shown["total_refunded"]["amount"], shown["available"]["amount"]) == (
        1200, 1200, 0)
    assert (await coupon_row(runtime, coupon["id"])).redemptions == 1  # a paid order keeps its redemption
    await assert_money_invariants(runtime.db)


async def test_checkout_enforces_the_coupons_limits_and_a_refused_checkout_changes_nothing(
        client: httpx.AsyncClient, runtime: Runtime, actors: Actors, admin: Actor, user: Actor) -> None:
    seller = await Seller.open(client, actors, runtime)
    app, book, extra = (await seller.listing(digital=1000), await seller.listing(digital=800),
                        await seller.listing(digital=600))
    foreign = await (await Seller.open(client, actors, runtime)).listing(digital=700)
    await fund(runtime, user, 10_000)
    once = await seller_coupon(client, seller, per_user_limit=1)
    assert (await place(client, user, [item(app)], coupon=once["code"], wait=20)).status_code == 201
    now = utcnow()
    refusals = {
        (once["code"], "book"): (409, "coupon_limit_reached"),
        ("NO-SUCH-COUPON", "book"): (422, "coupon_invalid"),
        ((await seller_coupon(client, seller, ends_at=(now - timedelta(minutes=1)).isoformat()))["code"], "book"):
            (422, "coupon_invalid"),
        ((await seller_coupon(client, seller, starts_at=(now + timedelta(days=1)).isoformat()))["code"], "book"):
            (422, "coupon_invalid"),
        ((await seller_coupon(client, seller, active=False))["code"], "book"): (422, "coupon_invalid"),
        ((await created(client, seller.developer, scope="listing", listing_id=app["id"]))["code"], "book"):
            (422, "coupon_not_applicable"),
        ((await seller_coupon(client, seller))["code"], "foreign"): (422, "coupon_not_applicable"),
        ((await created(client, admin, scope="store", max_redemptions=1))["code"], "none"): (0, ""),
    }
    used_up = next(code for code, what in refusals if what == "none")
    assert (await place(client, user, [item(extra)], coupon=used_up, wait=20)).status_code == 201
    del refusals[(used_up, "none")]
    refusals[(used_up, "foreign")] = (409, "coupon_exhausted")
    listings = {"book": book, "foreign": foreign}
    before = await balance(runtime, user)
    async with runtime.db.read_session() as session:
        orders_before = int(await session.scalar(select(func.count()).select_from(Order)) or 0)
    for (text, what), (status, problem) in refusals.items():
        refused = await place(client, user, [item(listings[what])], coupon=text)
        assert (refused.status_code, refused.json()["code"]) == (status, problem), (text, what, refused.text)
    async with runtime.db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == orders_before
    assert (await coupon_row(runtime, once["id"])).redemptions == 1
    await quiet(runtime)
    assert await balance(runtime, user) == before
    await assert_money_invariants(runtime.db)


async def test_concurrent_checkouts_with_a_coupon_limited_to_k_uses_discount_exactly_k(
        client: httpx.AsyncClient, runtime: Runtime, actors: Actors) -> None:
    seller = await Seller.open(client, actors, runtime)
    app = await seller.listing(digital=1000)
    coupon = await seller_coupon(client, seller, kind="fixed", value=300, max_redemptions=3)
    buyers = [await actors.create() for _ in range(8)]
    for buyer in buyers:
        await fund(runtime, buyer, 1000)
    answers = await asyncio.gather(*(place(client, buyer, [item(app)], coupon=coupon["code"]) for buyer in buyers))
    placed = [a.json() for a in answers if a.status_code == 201]
    refused = [a for a in answers if a.status_code != 201]
    assert len(placed) == 3 and all(o["discount"]["amount"] == 300 for o in placed), [a.text for a in answers]
    assert {(a.status_code, a.json()["code"]) for a in refused} == {(409, "coupon_exhausted")}
    assert (await coupon_row(runtime, coupon["id"])).redemptions == 3
    by_id = {buyer.id: buyer for buyer in buyers}
    for order in placed:
        assert (await order_of(client, by_id[order["user_id"]], order["id"], wait=20))["status"] == "completed"
    await quiet(runtime)
    assert (await earned(client, seller))["total_earned"]["amount"] == 3 * (700 - 140)
    await assert_money_invariants(runtime.db)


async def test_an_order_that_lapses_unpaid_gives_its_redemption_back(
        client: httpx.AsyncClient, runtime: Runtime, actors: Actors, user: Actor) -> None:
    seller = await Seller.open(client, actors, runtime)
    app = await seller.listing(digital=1000)
    coupon = await seller_coupon(client, seller, max_redemptions=1, per_user_limit=1)
    key = uuid.uuid4().hex
    unpaid = (await place(client, user, [item(app)], coupon=coupon["code"], key=key, wait=20)).json()
    assert unpaid["status"] == "awaiting_payment", unpaid
    again = await place(client, user, [item(app)], coupon=coupon["code"], key=key)  # a retry: the same order
    assert (again.status_code, again.json()["id"]) == (201, unpaid["id"])
    assert (await coupon_row(runtime, coupon["id"])).redemptions == 1
    canceled = await client.post(f"{V1}/orders/{unpaid['id']}/cancel", headers=user.headers)
    assert canceled.status_code == 200, canceled.text
    assert (await coupon_row(runtime, coupon["id"])).redemptions == 0
    await fund(runtime, user, 900)
    paid = await place(client, user, [item(app)], coupon=coupon["code"], wait=20)
    assert (paid.status_code, paid.json()["status"], paid.json()["total"]["amount"]) == (201, "completed", 900)
    assert (await coupon_row(runtime, coupon["id"])).redemptions == 1
    await quiet(runtime)
    await assert_money_invariants(runtime.db)
