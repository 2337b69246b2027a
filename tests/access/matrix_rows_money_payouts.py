"""Matrix rows (A2/A3/A6) of the coupon, earnings and payout routes.

Coupons: members of a publisher manage its coupons, admins every coupon (store-wide ones
only admins). Earnings and payouts: members of ``mine`` read its earnings and request
payouts (admins may request for any publisher, as they act for any publisher elsewhere);
marketplace and super admins decide.
Earnings come from a sale booked with the wallet service, as the order saga books it.
"""

from __future__ import annotations

import uuid
from typing import Any

from mercato.wallet import service as wallet
from mercato.wallet.service import Split
from tests.access.matrix import (
    ADMIN,
    ADMINS,
    DEV,
    OTHER_DEV,
    REVIEWER,
    SUPER,
    USER,
    V1,
    Row,
    World,
    dynamic,
    only,
    static,
)
from tests.access.matrix_rows_library import a_listing

MANAGERS = (DEV, OTHER_DEV, *ADMINS)
PAYOUTS = f"{V1}/publishers/{{slug}}/payouts"


def code() -> str:
    return f"M-{uuid.uuid4().hex[:10].upper()}"


def coupon_body(**fields: Any) -> dict[str, Any]:
    return {"code": code(), "kind": "percent", "value": 10, **fields}


async def a_coupon_of_mine(world: World, who: str) -> dict[str, Any]:
    response = await world.client.post(f"{V1}/coupons", headers=world.super_admin.headers,
                                       json=coupon_body(scope="publisher", publisher=world.mine))
    assert response.status_code == 201, response.text
    return {"url": f"{V1}/coupons/{response.json()['id']}", "json": {"active": False}}


async def a_listing_coupon_of_mine(world: World, who: str) -> dict[str, Any]:
    listing = await a_listing(world, published=False, price=1000)
    return {"url": f"{V1}/coupons", "json": coupon_body(scope="listing", listing_id=listing["id"])}


async def earned(world: World, amount: int = 1000) -> None:
    """A sale of ``amount`` by ``mine`` to the plain user, settled (commission 20 %)."""
    found = await world.client.get(f"{V1}/publishers/{world.mine}")
    assert found.status_code == 200, found.text
    publisher_id, buyer, order_id = uuid.UUID(found.json()["id"]), uuid.UUID(world.who[USER].id), uuid.uuid4()
    async with world.runtime.db.transaction() as session:
        await wallet.credit_payment(session, payment_id=uuid.uuid4(), user_id=buyer, provider="sandbox",
                                    amount=amount, currency="USD")
        await wallet.debit_order(session, order_id=order_id, user_id=buyer, amount=amount, currency="USD")
        await wallet.settle_order(session, order_id=order_id, splits=[Split(publisher_id, amount)],
                                  commission_bps=2000, currency="USD")


async def payout_request(world: World, who: str, *, amount: int = 100) -> dict[str, Any]:
    await earned(world)
    return {"url": f"{V1}/publishers/{world.mine}/payouts", "json": {"amount": amount},
            "headers": {"Idempotency-Key": uuid.uuid4().hex}}


async def a_payout(world: World, *, decided: bool = False) -> str:
    await earned(world)
    response = await world.client.post(f"{V1}/publishers/{world.mine}/payouts", json={"amount": 500}, headers={
        **world.who[DEV].headers, "Idempotency-Key": uuid.uuid4().hex})
    assert response.status_code == 201, response.text
    payout_id = str(response.json()["id"])
    if decided:
        approved = await world.client.post(f"{V1}/admin/payouts/{payout_id}/approve", headers=world.super_admin.headers)
        assert approved.status_code == 200, approved.text
    return payout_id


async def approve_a_payout(world: World, who: str) -> dict[str, Any]:
    return {"url": f"{V1}/admin/payouts/{await a_payout(world)}/approve"}


async def approve_a_decided_payout(world: World, who: str) -> dict[str, Any]:
    return {"url": f"{V1}/admin/payouts/{await a_payout(world, decided=True)}/approve"}


async def reject_a_payout(world: World, who: str) -> dict[str, Any]:
    return {"url": f"{V1}/admin/payouts/{await a_payout(world)}/reject", "json": {"reason": "Matrix says no"}}


MATRIX_ROWS: list[Row] = [
    # coupons (M8)
    Row("list coupons", "GET", f"{V1}/coupons", only(*MANAGERS, status=200), static(f"{V1}/coupons")),
    Row("create a store-wide coupon (admins only)", "POST", f"{V1}/coupons", only(*ADMINS, status=201),
        dynamic(lambda w, who: {"url": f"{V1}/coupons", "json": coupon_body(scope="store")})),
    Row("create a coupon for own publisher / other's", "POST", f"{V1}/coupons", only(DEV, *ADMINS, status=201),
        dynamic(lambda w, who: {"url": f"{V1}/coupons", "json": coupon_body(scope="publisher", publisher=w.mine)})),
    Row("create a coupon for own listing / other's draft (A3)", "POST", f"{V1}/coupons",
        {**only(DEV, *ADMINS, status=201), OTHER_DEV: 404}, a_listing_coupon_of_mine),
    Row("create a coupon for an unknown listing (A3)", "POST", f"{V1}/coupons", only(*MANAGERS, status=404),
        dynamic(lambda w, who: {"url": f"{V1}/coupons",
                                "json": coupon_body(scope="listing", listing_id=str(uuid.uuid4()))})),
    Row("change own publisher's coupon / other's (A3)", "PATCH", f"{V1}/coupons/{{coupon_id}}",
        {**only(DEV, *ADMINS, status=200), OTHER_DEV: 404}, a_coupon_of_mine),
    Row("change an unknown coupon (A3)", "PATCH", f"{V1}/coupons/{{coupon_id}}", only(*MANAGERS, status=404),
        static(f"{V1}/coupons/{uuid.uuid4()}", json={"active": False})),
    # earnings (M7)
    Row("own publisher's earnings / other's (A3)", "GET", f"{V1}/publishers/{{slug}}/earnings",
        {**only(DEV, ADMIN, SUPER, status=200), OTHER_DEV: 404},
        dynamic(lambda w, who: {"url": f"{V1}/publishers/{w.mine}/earnings"})),
    Row("an unknown publisher's earnings (A3)", "GET", f"{V1}/publishers/{{slug}}/earnings",
        only(DEV, OTHER_DEV, ADMIN, SUPER, status=404), static(f"{V1}/publishers/no-such-publisher/earnings")),
    # payouts (M7)
    Row("request a payout for own publisher / other's (A3)", "POST", PAYOUTS,
        {**only(DEV, *ADMINS, status=201), OTHER_DEV: 404}, payout_request),
    Row("request a payout above the earnings (A6)", "POST", PAYOUTS, {**only(DEV, *ADMINS, status=409), OTHER_DEV: 404},
        lambda w, who: payout_request(w, who, amount=10**9)),
    Row("request a payout without an Idempotency-Key", "POST", PAYOUTS, only(DEV, OTHER_DEV, *ADMINS, status=400),
        dynamic(lambda w, who: {"url": f"{V1}/publishers/{w.mine}/payouts", "json": {"amount": 100}})),
    Row("list payouts", "GET", f"{V1}/admin/payouts", only(*ADMINS, status=200), static(f"{V1}/admin/payouts")),
    Row("approve a payout", "POST", f"{V1}/admin/payouts/{{payout_id}}/approve", only(*ADMINS, status=200),
        approve_a_payout),
    Row("approve a decided payout (A6)", "POST", f"{V1}/admin/payouts/{{payout_id}}/approve",
        only(*ADMINS, status=409), approve_a_decided_payout),
    Row("approve an unknown payout (A3)", "POST", f"{V1}/admin/payouts/{{payout_id}}/approve",
        only(*ADMINS, status=404), static(f"{V1}/admin/payouts/{uuid.uuid4()}/approve")),
    Row("reject a payout", "POST", f"{V1}/admin/payouts/{{payout_id}}/reject", only(*ADMINS, status=200),
        reject_a_payout),
]

assert REVIEWER not in MANAGERS  # reviewers manage no coupons
