"""M7: publisher earnings after settlements, and payouts requested by members and decided
by admins, with the ledger balances behind them."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from mercato.app.runtime import Runtime
from mercato.ledger import accounts
from mercato.ledger import service as ledger
from mercato.models import AuditEntry, OutboxEvent
from mercato.wallet import service as wallet
from mercato.wallet.service import Split
from tests.catalog.support import Shop
from tests.library.support import eventually
from tests.support.actors import Actor, Actors
from tests.support.earnings import sold
from tests.support.invariants import assert_money_invariants

V1 = "/api/v1"


@pytest.fixture
async def shop(client: httpx.AsyncClient, actors: Actors) -> Shop:
    return await Shop.open(client, actors)


async def publisher_id(client: httpx.AsyncClient, slug: str) -> uuid.UUID:
    response = await client.get(f"{V1}/publishers/{slug}")
    assert response.status_code == 200, response.text
    return uuid.UUID(response.json()["id"])


async def balances(runtime: Runtime, publisher: uuid.UUID) -> tuple[int, int, int]:
    async with runtime.db.read_session() as session:
        return (await ledger.balance(session, accounts.publisher_earnings(publisher)),
                await ledger.balance(session, accounts.payouts_pending(publisher)),
                await ledger.balance(session, accounts.provider_clearing("payouts")))


async def earnings(client: httpx.AsyncClient, who: Actor, slug: str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"{V1}/publishers/{slug}/earnings", headers=who.headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def request(client: httpx.AsyncClient, who: Actor, slug: str, amount: int,
                  key: str | None = None) -> httpx.Response:
    return await client.post(f"{V1}/publishers/{slug}/payouts", headers={
        **who.headers, "Idempotency-Key": key or str(uuid.uuid4())}, json={"amount": amount})


async def requested(client: httpx.AsyncClient, who: Actor, slug: str, amount: int) -> dict[str, Any]:
    response = await request(client, who, slug, amount)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


# --- earnings ------------------------------------------------------------------------------------

async def test_earnings_show_sales_after_commission_and_refunds(client: httpx.AsyncClient, runtime: Runtime,
                                                                shop: Shop, user: Actor) -> None:
    pub = await publisher_id(client, shop.publisher)
    empty = await earnings(client, shop.developer, shop.publisher)
    assert (empty["available"]["amount"], empty["movements"]["items"]) == (0, [])
    first = await sold(runtime, user, pub, 5000)   # earns 4000
    await sold(runtime, user, pub, 999)            # earns 999 - 199 = 800
    async with runtime.db.transaction() as session:
        await wallet.reverse_sale(session, refund_id=uuid.uuid4(), order_id=first, user_id=uuid.UUID(user.id),
                                  splits=[Split(pub, 1000)], commission_bps=2000, currency="USD")  # gives back 800
    shown = await earnings(client, shop.developer, shop.publisher)
    assert (shown["available"]["amount"], shown["total_earned"]["amount"], shown["total_refunded"]["amount"],
            shown["pending_payouts"]["amount"], shown["paid_out"]["amount"]) == (4000, 4800, 800, 0, 0)
    assert [(m["kind"], m["amount"]["amount"], m["balance_after"]["amount"])
            for m in shown["movements"]["items"]] == [("refund", -800, 4000), ("settlement", 800, 4800),
                                                      ("settlement", 4000, 4000)]
    page = await earnings(client, shop.developer, shop.publisher, limit=2)
    rest = await earnings(client, shop.developer, shop.publisher, limit=2, cursor=page["movements"]["next_cursor"])
    assert [m["kind"] for m in rest["movements"]["items"]] == ["settlement"]
    assert rest["movements"]["next_cursor"] is None
    await assert_money_invariants(runtime.db)


async def test_another_publishers_earnings_are_404_and_plain_users_403(
        client: httpx.AsyncClient, runtime: Runtime, actors: Actors, shop: Shop, admin: Actor, user: Actor) -> None:
    other = await Shop.open(client, actors)
    await sold(runtime, user, await publisher_id(client, other.publisher), 1000)
    theirs = await client.get(f"{V1}/publishers/{other.publisher}/earnings", headers=shop.developer.headers)
    assert theirs.status_code == 404, theirs.text
    assert (await client.get(f"{V1}/publishers/{other.publisher}/earnings", headers=user.headers)).status_code == 403
    assert (await earnings(client, admin, other.publisher))["available"]["amount"] == 800
    assert (await client.get(f"{V1}/publishers/no-such-one/earnings", headers=admin.headers)).status_code == 404
    await assert_money_invariants(runtime.db)


# --- payouts -------------------------------------------------------------------------------------

async def test_a_payout_request_sets_earnings_aside_and_approval_pays_it_out(
        client: httpx.AsyncClient, runtime: Runtime, shop: Shop, admin: Actor, user: Actor) -> None:
    pub = await publisher_id(client, shop.publisher)
    await sold(runtime, user, pub, 5000)
    payout = await requested(client, shop.developer, shop.publisher, 1500)
    assert (payout["status"], payout["amount"], payout["publisher"]) == (
        "requested", {"amount": 1500, "currency": "USD"}, shop.publisher)
    assert await balances(runtime, pub) == (2500, 1500, 0)
    listed = await client.get(f"{V1}/admin/payouts", headers=admin.headers,
                              params={"status": "requested", "publisher": shop.publisher, "total": "true"})
    assert [p["id"] for p in listed.json()["items"]] == [payout["id"]] and listed.json()["total"] == 1
    approved = await client.post(f"{V1}/admin/payouts/{payout['id']}/approve", headers=admin.headers)
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["decided_by"]) == ("approved", admin.id)
    assert await balances(runtime, pub) == (2500, 0, 1500)
    shown = await earnings(client, shop.developer, shop.publisher)
    assert (shown["available"]["amount"], shown["pending_payouts"]["amount"], shown["paid_out"]["amount"]) == (
        2500, 0, 1500)
    async with runtime.db.read_session() as session:
        types = set(await session.scalars(select(OutboxEvent.type).where(OutboxEvent.subject == payout["id"])))
        actions = set(await session.scalars(select(AuditEntry.action).where(AuditEntry.resource_id == payout["id"])))
        posted = await ledger.account(session, accounts.provider_clearing("payouts"))
    assert types == {"payout.requested", "payout.approved"}
    assert actions == {"payout:request", "payout:approve"}
    assert posted is not None and posted.kind == "provider_clearing"

    async def inbox() -> list[dict[str, Any]]:
        response = await client.get(f"{V1}/notifications", headers=shop.developer.headers)
        return [n for n in response.json()["items"] if n["kind"] == "payout.approved"]

    [note] = await eventually(inbox, lambda items: len(items) == 1)
    assert note["data"]["payout_id"] == payout["id"]
    await assert_money_invariants(runtime.db)


async def test_rejection_gives_the_amount_back(client: httpx.AsyncClient, runtime: Runtime, shop: Shop,
                                               admin: Actor, user: Actor) -> None:
    pub = await publisher_id(client, shop.publisher)
    await sold(runtime, user, pub, 1000)
    payout = await requested(client, shop.developer, shop.publisher, 800)
    assert await balances(runtime, pub) == (0, 800, 0)
    missing_reason = await client.post(f"{V1}/admin/payouts/{payout['id']}/reject", headers=admin.headers, json={})
    assert missing_reason.status_code == 422
    rejected = await client.post(f"{V1}/admin/payouts/{payout['id']}/reject", headers=admin.headers,
                                 json={"reason": "Bank details missing"})
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["status"], rejected.json()["decision_reason"]) == ("rejected", "Bank details missing")
    assert await balances(runtime, pub) == (800, 0, 0)

    async def inbox() -> list[dict[str, Any]]:
        response = await client.get(f"{V1}/notifications", headers=shop.developer.headers)
        return [n for n in response.json()["items"] if n["kind"] == "payout.rejected"]

    await eventually(inbox, lambda items: len(items) == 1)
    await assert_money_invariants(runtime.db)


async def test_deciding_twice_is_409_and_changes_nothing(client: httpx.AsyncClient, runtime: Runtime, shop: Shop,
                                                         admin: Actor, user: Actor) -> None:
    pub = await publisher_id(client, shop.publisher)
    await sold(runtime, user, pub, 1000)
    payout = await requested(client, shop.developer, shop.publisher, 500)
    url = f"{V1}/admin/payouts/{payout['id']}"
    assert (await client.post(f"{url}/approve", headers=admin.headers)).status_code == 200
    for verb, body in (("approve", None), ("reject", {"reason": "Too late"})):
        again = await client.post(f"{url}/{verb}", headers=admin.headers, json=body)
        assert again.status_code == 409 and again.json()["code"] == "invalid_transition", again.text
    assert await balances(runtime, pub) == (300, 0, 500)
    unknown = await client.post(f"{V1}/admin/payouts/{uuid.uuid4()}/approve", headers=admin.headers)
    assert unknown.status_code == 404
    await assert_money_invariants(runtime.db)


async def test_concurrent_approve_and_reject_one_wins(client: httpx.AsyncClient, runtime: Runtime, shop: Shop,
                                                      admin: Actor, user: Actor) -> None:
    pub = await publisher_id(client, shop.publisher)
    await sold(runtime, user, pub, 1000)
    payout = await requested(client, shop.developer, shop.publisher, 800)
    url = f"{V1}/admin/payouts/{payout['id']}"
    answers = await asyncio.gather(*[client.post(f"{url}/approve", headers=admin.headers) for _ in range(3)],
                                   *[client.post(f"{url}/reject", headers=admin.headers, json={"reason": "Nope"})
                                     for _ in range(3)])
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409, 409, 409]
    winner = next(a for a in answers if a.status_code == 200).json()["status"]
    assert await balances(runtime, pub) == ((0, 0, 800) if winner == "approved" else (800, 0, 0))
    await assert_money_invariants(runtime.db)


async def test_a_payout_above_the_available_earnings_is_refused(client: httpx.AsyncClient, runtime: Runtime,
                                                                shop: Shop, user: Actor) -> None:
    pub = await publisher_id(client, shop.publisher)
    too_much = await request(client, shop.developer, shop.publisher, 1)  # nothing earned yet
    assert too_much.status_code == 409 and too_much.json()["code"] == "insufficient_funds"
    await sold(runtime, user, pub, 1000)
    refused = await request(client, shop.developer, shop.publisher, 801)
    assert refused.status_code == 409 and refused.json()["code"] == "insufficient_funds"
    assert await balances(runtime, pub) == (800, 0, 0)
    assert (await request(client, shop.developer, shop.publisher, 800)).status_code == 201
    async with runtime.db.read_session() as session:
        kinds = list(await session.scalars(select(OutboxEvent.type).where(OutboxEvent.type == "payout.requested",
                                                                          OutboxEvent.publisher_id == pub)))
    assert kinds == ["payout.requested"]
    await assert_money_invariants(runtime.db)


async def test_payout_requests_are_idempotent(client: httpx.AsyncClient, runtime: Runtime, shop: Shop,
                                              user: Actor) -> None:
    pub = await publisher_id(client, shop.publisher)
    await sold(runtime, user, pub, 5000)
    first = await request(client, shop.developer, shop.publisher, 1000, key="payout-key-1")
    again = await request(client, shop.developer, shop.publisher, 1000, key="payout-key-1")
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    other_body = await request(client, shop.developer, shop.publisher, 2000, key="payout-key-1")
    assert other_body.status_code == 422 and other_body.json()["code"] == "idempotency_key_reused"
    missing = await client.post(f"{V1}/publishers/{shop.publisher}/payouts", headers=shop.developer.headers,
                                json={"amount": 100})
    assert missing.status_code == 400
    invalid = await request(client, shop.developer, shop.publisher, 0)
    assert invalid.status_code == 422
    assert await balances(runtime, pub) == (3000, 1000, 0)
    await assert_money_invariants(runtime.db)


async def test_concurrent_requests_never_exceed_the_available_earnings(
        client: httpx.AsyncClient, runtime: Runtime, shop: Shop, user: Actor) -> None:
    pub = await publisher_id(client, shop.publisher)
    await sold(runtime, user, pub, 5000)  # 4000 available
    answers = await asyncio.gather(*(request(client, shop.developer, shop.publisher, 1000) for _ in range(10)))
    assert sorted(a.status_code for a in answers) == [201] * 4 + [409] * 6
    assert await balances(runtime, pub) == (0, 4000, 0)
    await assert_money_invariants(runtime.db)


async def test_members_of_another_publisher_cannot_request_its_payouts(
        client: httpx.AsyncClient, runtime: Runtime, actors: Actors, shop: Shop, user: Actor) -> None:
    other = await Shop.open(client, actors)
    await sold(runtime, user, await publisher_id(client, other.publisher), 1000)
    assert (await request(client, shop.developer, other.publisher, 100)).status_code == 404
    assert (await request(client, user, other.publisher, 100)).status_code == 403
    assert (await client.get(f"{V1}/admin/payouts", headers=shop.developer.headers)).status_code == 403
    await assert_money_invariants(runtime.db)


async def test_a_payout_never_takes_more_than_is_left_after_refunds_and_pending_payouts(
        client: httpx.AsyncClient, runtime: Runtime, shop: Shop, admin: Actor, user: Actor) -> None:
    pub = await publisher_id(client, shop.publisher)
    order_id = await sold(runtime, user, pub, 1000)  # earns 800
    async with runtime.db.transaction() as session:  # half of it refunded: 400 of the earnings go back
        await wallet.reverse_sale(session, refund_id=uuid.uuid4(), order_id=order_id, user_id=uuid.UUID(user.id),
                                  splits=[Split(pub, 500)], commission_bps=2000, currency="USD")
    refused = await request(client, shop.developer, shop.publisher, 401)
    assert refused.status_code == 409 and refused.json()["code"] == "insufficient_funds", refused.text
    pending = await requested(client, shop.developer, shop.publisher, 300)
    beyond = await request(client, shop.developer, shop.publisher, 101)  # 300 of the 400 are set aside
    assert beyond.status_code == 409 and beyond.json()["code"] == "insufficient_funds", beyond.text
    rejected = await client.post(f"{V1}/admin/payouts/{pending['id']}/reject", headers=admin.headers,
                                 json={"reason": "Wrong account"})
    assert rejected.status_code == 200, rejected.text
    assert (await request(client, shop.developer, shop.publisher, 400)).status_code == 201
    assert (await request(client, shop.developer, shop.publisher, 1)).status_code == 409
    assert await balances(runtime, pub) == (0, 400, 0)
    await assert_money_invariants(runtime.db)
