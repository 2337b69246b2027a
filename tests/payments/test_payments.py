"""Payments through the API and the service (PRODUCT M2, DOMAIN.md "Payment", QUALITY M2/M3/M9):
idempotent top-ups, visibility, signed webhooks over HTTP (good, replayed, out of order,
tampered, stale, malformed, concurrent), refunds, and the events published."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from sqlalchemy import select

from mercato.app.runtime import Runtime
from mercato.ledger import accounts
from mercato.ledger import service as ledger
from mercato.ledger.errors import InsufficientFunds
from mercato.models import OutboxEvent, SandboxPayment
from mercato.payments import service
from mercato.payments.errors import PaymentNotRefundable, ProviderError, RefundTooLarge
from mercato.wallet import service as wallet
from tests.support.actors import Actor, Actors
from tests.support.invariants import assert_money_invariants
from tests.support.payments import (
    V1,
    balance,
    credited_balance,
    credits_of,
    delivered,
    pay,
    post_webhook,
    provider_ref,
    read_payment,
    sandbox_event,
    signed,
    topup,
)

EVENT_KEYS = {"payment_id", "user_id", "provider", "purpose", "order_id", "amount", "currency", "status"}


async def events_of(runtime: Runtime, payment_id: str) -> list[OutboxEvent]:
    async with runtime.db.read_session() as session:
        return list(await session.scalars(select(OutboxEvent).where(OutboxEvent.subject == payment_id)
                                          .order_by(OutboxEvent.sequence)))


async def succeeded_topup(client: httpx.AsyncClient, runtime: Runtime, actor: Actor, amount: int) -> dict:  # type: ignore[type-arg]
    """A top-up confirmed by a signed webhook over HTTP, with the wallet credited."""
    payment = await topup(client, actor, amount)
    ref = await provider_ref(runtime, payment["id"])
    body = sandbox_event(ref, payment["id"], "succeeded", amount=amount)
    answered = await post_webhook(client, body, signed(runtime, body))
    assert answered.status_code == 200, answered.text
    assert await credited_balance(client, actor, amount) == amount
    return payment


async def paid_topup(client: httpx.AsyncClient, runtime: Runtime, actor: Actor, amount: int) -> dict:  # type: ignore[type-arg]
    """A top-up paid on the sandbox's pay page (so the provider holds the money to refund)."""
    payment = await topup(client, actor, amount)
    await pay(client, payment)
    await delivered(runtime)
    assert await credited_balance(client, actor, amount) == amount
    return payment


# --- top-ups ------------------------------------------------------------------------------------

async def test_a_topup_answers_a_pending_payment_with_a_checkout_url(client: httpx.AsyncClient, runtime: Runtime,
                                                                     user: Actor) -> None:
    payment = await topup(client, user, 1999)
    assert payment["status"] == "pending" and payment["purpose"] == "topup" and payment["order_id"] is None
    assert payment["amount"] == {"amount": 1999, "currency": "USD"}
    assert payment["refunded_amount"] == {"amount": 0, "currency": "USD"}
    assert payment["checkout_url"].endswith(f"/sandbox/pay/{payment['id']}")
    created = await events_of(runtime, payment["id"])
    assert [e.type for e in created] == ["payment.created"]
    assert set(created[0].data) == EVENT_KEYS
    assert created[0].data["status"] == "pending" and created[0].data["user_id"] == user.id
    assert await balance(client, user) == 0


async def test_the_same_idempotency_key_answers_the_same_payment(client: httpx.AsyncClient, runtime: Runtime,
                                                                 user: Actor) -> None:
    first = await topup(client, user, 1000, key="topup-once")
    again = await topup(client, user, 1000, key="topup-once")
    assert again == first
    listed = (await client.get(f"{V1}/payments", headers=user.headers)).json()["items"]
    assert [p["id"] for p in listed] == [first["id"]]


async def test_an_idempotency_key_reused_with_another_body_is_refused(client: httpx.AsyncClient,
                                                                      user: Actor) -> None:
    await topup(client, user, 1000, key="topup-reused")
    response = await client.post(f"{V1}/wallet/topups", json={"amount": 2000},
                                 headers={**user.headers, "Idempotency-Key": "topup-reused"})
    assert response.status_code == 422 and response.json()["code"] == "idempotency_key_reused"


async def test_a_topup_without_an_idempotency_key_is_refused(client: httpx.AsyncClient, user: Actor) -> None:
    response = await client.post(f"{V1}/wallet/topups", json={"amount": 1000}, headers=user.headers)
    assert response.status_code == 400
    assert (await client.get(f"{V1}/payments", headers=user.headers)).json()["items"] == []


@pytest.mark.parametrize("amount", [99, 100_000_001, 0, -5, 10.5, "1000", None],
                         ids=["too-small", "too-large", "zero", "negative", "float", "string", "null"])
async def test_a_topup_amount_out_of_bounds_is_invalid(client: httpx.AsyncClient, user: Actor,
                                                       amount: object) -> None:
    response = await client.post(f"{V1}/wallet/topups", json={"amount": amount},
                                 headers={**user.headers, "Idempotency-Key": uuid.uuid4().hex})
    assert response.status_code == 422, response.text
    assert (await client.get(f"{V1}/payments", headers=user.headers)).json()["items"] == []


# --- reading ------------------------------------------------------------------------------------

async def test_payments_are_listed_newest_first_with_a_cursor(client: httpx.AsyncClient, user: Actor,
                                                              actors: Actors) -> None:
    made = [await topup(client, user, 100 + i) for i in range(3)]
    other = await actors.create()
    await topup(client, other, 5000)
    first = (await client.get(f"{V1}/payments", params={"limit": 2}, headers=user.headers)).json()
    second = (await client.get(f"{V1}/payments", params={"limit": 2, "cursor": first["next_cursor"]},
                               headers=user.headers)).json()
    assert [p["id"] for p in first["items"] + second["items"]] == [p["id"] for p in reversed(made)]
    assert second["next_cursor"] is None


async def test_a_payment_is_visible_to_its_payer_and_admins_only(client: httpx.AsyncClient, user: Actor,
                                                                 actors: Actors, admin: Actor) -> None:
    payment = await topup(client, user, 1000)
    stranger = await actors.create()
    assert (await client.get(f"{V1}/payments/{payment['id']}", headers=stranger.headers)).status_code == 404
    assert (await read_payment(client, admin, payment["id"]))["id"] == payment["id"]
    assert (await client.get(f"{V1}/payments/{payment['id']}")).status_code == 401


# --- webhooks over HTTP ---------------------------------------------------------------------------

async def test_a_signed_webhook_succeeds_the_payment_and_a_replay_changes_nothing(
        client: httpx.AsyncClient, runtime: Runtime, user: Actor) -> None:
    payment = await topup(client, user, 3000)
    ref = await provider_ref(runtime, payment["id"])
    body = sandbox_event(ref, payment["id"], "succeeded", amount=3000)
    headers = signed(runtime, body)
    first = await post_webhook(client, body, headers)
    assert first.status_code == 200 and first.json()["effect"] == "succeeded"
    replay = await post_webhook(client, body, headers)
    assert replay.status_code == 200 and replay.json()["effect"] == "duplicate"
    fresh = sandbox_event(ref, payment["id"], "succeeded", amount=3000)  # the provider sends it again, new id
    assert (await post_webhook(client, fresh, signed(runtime, fresh))).json()["effect"] == "duplicate"
    assert await credited_balance(client, user, 3000) == 3000
    assert await credits_of(runtime, payment["id"]) == 1
    types = [e.type for e in await events_of(runtime, payment["id"])]
    assert types == ["payment.created", "payment.succeeded"]
    succeeded = (await events_of(runtime, payment["id"]))[1].data
    assert set(succeeded) == EVENT_KEYS and succeeded["status"] == "succeeded" and succeeded["amount"] == 3000
    read = await read_payment(client, user, payment["id"])
    assert read["status"] == "succeeded" and read["succeeded_at"] is not None
    await assert_money_invariants(runtime.db)


async def test_a_failure_reported_after_success_leaves_the_payment_succeeded(
        client: httpx.AsyncClient, runtime: Runtime, user: Actor) -> None:
    payment = await succeeded_topup(client, runtime, user, 800)
    ref = await provider_ref(runtime, payment["id"])
    for status in ("failed", "canceled", "expired"):
        body = sandbox_event(ref, payment["id"], status, amount=800)
        answered = await post_webhook(client, body, signed(runtime, body))
        assert answered.status_code == 200 and answered.json()["effect"] == "duplicate"
    assert (await read_payment(client, user, payment["id"]))["status"] == "succeeded"
    assert await credited_balance(client, user, 800) == 800
    await assert_money_invariants(runtime.db)


async def test_a_success_reported_after_failure_credits_nothing(client: httpx.AsyncClient, runtime: Runtime,
                                                                user: Actor) -> None:
    payment = await topup(client, user, 800)
    ref = await provider_ref(runtime, payment["id"])
    failed = sandbox_event(ref, payment["id"], "failed", amount=800)
    assert (await post_webhook(client, failed, signed(runtime, failed))).json()["effect"] == "failed"
    late = sandbox_event(ref, payment["id"], "succeeded", amount=800)
    assert (await post_webhook(client, late, signed(runtime, late))).json()["effect"] == "duplicate"
    assert (await read_payment(client, user, payment["id"]))["status"] == "failed"
    await asyncio.sleep(0.3)
    assert await balance(client, user) == 0
    await assert_money_invariants(runtime.db)


@pytest.mark.parametrize("case", ["tampered", "wrong-secret", "no-header", "garbled-header", "stale", "future",
                                  "malformed"])
async def test_a_bad_webhook_is_refused_and_changes_nothing(client: httpx.AsyncClient, runtime: Runtime,
                                                            user: Actor, case: str) -> None:
    payment = await topup(client, user, 1000)
    ref = await provider_ref(runtime, payment["id"])
    body = sandbox_event(ref, payment["id"], "succeeded", amount=1000)
    now = int(time.time())
    expected = "invalid_signature"
    if case == "tampered":
        headers = signed(runtime, body)
        body = body.replace(b"succeeded", b"failed")
    elif case == "wrong-secret":
        headers = signed(runtime, body, secret="whsec_not_the_right_one")
    elif case == "no-header":
        headers = {}
    elif case == "garbled-header":
        headers = {"Mercato-Signature": "v1=abc,t=yesterday"}
    elif case == "stale":
        headers, expected = signed(runtime, body, timestamp=now - 301), "stale_webhook"
    elif case == "future":
        headers, expected = signed(runtime, body, timestamp=now + 400), "stale_webhook"
    else:
        body = b'{"id": "evt_1", "type": "payment.succeeded", "data": "not an object"}'
        headers, expected = signed(runtime, body), "malformed_webhook"
    answered = await post_webhook(client, body, headers)
    assert answered.status_code == 400, answered.text
    assert answered.json()["code"] == expected
    assert (await read_payment(client, user, payment["id"]))["status"] == "pending"
    assert [e.type for e in await events_of(runtime, payment["id"])] == ["payment.created"]
    await assert_money_invariants(runtime.db)


async def test_a_webhook_not_json_is_refused(client: httpx.AsyncClient, runtime: Runtime) -> None:
    body = b"this is not json"
    answered = await post_webhook(client, body, signed(runtime, body))
    assert answered.status_code == 400 and answered.json()["code"] == "malformed_webhook"


async def test_a_webhook_for_an_unknown_provider_is_not_found(client: httpx.AsyncClient) -> None:
    answered = await post_webhook(client, b"{}", {}, provider="paypal")
    assert answered.status_code == 404 and answered.json()["code"] == "unknown_provider"


async def test_a_signed_webhook_for_an_unknown_payment_is_acknowledged(client: httpx.AsyncClient,
                                                                       runtime: Runtime) -> None:
    body = sandbox_event("sbx_nobody", str(uuid.uuid4()), "succeeded")
    answered = await post_webhook(client, body, signed(runtime, body))
    assert answered.status_code == 200 and answered.json()["effect"] == "unknown_payment"


async def test_concurrent_duplicate_webhooks_credit_once(client: httpx.AsyncClient, runtime: Runtime,
                                                         user: Actor) -> None:
    payment = await topup(client, user, 4200)
    ref = await provider_ref(runtime, payment["id"])
    bodies = [sandbox_event(ref, payment["id"], "succeeded", amount=4200) for _ in range(8)]
    answers = await asyncio.gather(*(post_webhook(client, body, signed(runtime, body)) for body in bodies))
    assert sorted(a.json()["effect"] for a in answers) == ["duplicate"] * 7 + ["succeeded"]
    assert await credited_balance(client, user, 4200) == 4200
    assert await credits_of(runtime, payment["id"]) == 1
    assert [e.type for e in await events_of(runtime, payment["id"])] == ["payment.created", "payment.succeeded"]
    await assert_money_invariants(runtime.db)


# --- refunds --------------------------------------------------------------------------------------

async def test_a_partial_then_full_refund_gives_the_money_back_through_the_provider(
        client: httpx.AsyncClient, runtime: Runtime, user: Actor) -> None:
    payment = await paid_topup(client, runtime, user, 5000)
    payment_id = uuid.UUID(payment["id"])
    async with runtime.db.transaction() as session:
        partial = await service.refund(session, payment_id=payment_id, amount=1500, reason="excess",
                                       gateway=runtime.payments)
        assert (partial.status, partial.refunded_amount) == ("partially_refunded", 1500)
    assert await balance(client, user) == 3500
    async with runtime.db.transaction() as session:
        full = await service.refund(session, payment_id=payment_id, amount=3500, reason="late payment",
                                    gateway=runtime.payments)
        assert (full.status, full.refunded_amount) == ("refunded", 5000)
    assert await balance(client, user) == 0
    async with runtime.db.read_session() as session:
        assert await ledger.balance(session, accounts.provider_clearing("sandbox")) == 0
        books = await session.scalar(select(SandboxPayment).where(SandboxPayment.merchant_payment_id == payment_id))
        assert books is not None and books.refunded_amount == 5000
    read = await read_payment(client, user, payment["id"])
    assert read["status"] == "refunded" and read["refunded_amount"]["amount"] == 5000
    refunded = [e for e in await events_of(runtime, payment["id"]) if e.type == "payment.refunded"]
    assert [(e.data["status"], e.data["refund_amount"], e.data["refunded_amount"]) for e in refunded] == [
        ("partially_refunded", 1500, 1500), ("refunded", 3500, 5000)]
    assert EVENT_KEYS <= set(refunded[0].data)
    async with runtime.db.transaction() as session:
        with pytest.raises(PaymentNotRefundable):
            await service.refund(session, payment_id=payment_id, amount=1, reason="again", gateway=runtime.payments)
    await assert_money_invariants(runtime.db)


async def test_a_refund_larger_than_what_is_left_is_refused(client: httpx.AsyncClient, runtime: Runtime,
                                                            user: Actor) -> None:
    payment = await paid_topup(client, runtime, user, 1000)
    async with runtime.db.transaction() as session:
        await service.refund(session, payment_id=uuid.UUID(payment["id"]), amount=400, reason="excess",
                             gateway=runtime.payments)
    async with runtime.db.transaction() as session:
        with pytest.raises(RefundTooLarge):
            await service.refund(session, payment_id=uuid.UUID(payment["id"]), amount=601, reason="too much",
                                 gateway=runtime.payments)
    assert await balance(client, user) == 600
    await assert_money_invariants(runtime.db)


async def test_a_refund_the_wallet_cannot_cover_changes_nothing(client: httpx.AsyncClient, runtime: Runtime,
                                                                user: Actor) -> None:
    payment = await paid_topup(client, runtime, user, 1000)
    async with runtime.db.transaction() as session:  # the money was spent meanwhile
        await wallet.debit_order(session, order_id=uuid.uuid4(), user_id=uuid.UUID(user.id), amount=900,
                                 currency="USD")
    async with runtime.db.transaction() as session:
        with pytest.raises(InsufficientFunds):
            await service.refund(session, payment_id=uuid.UUID(payment["id"]), amount=500, reason="excess",
                                 gateway=runtime.payments)
        # the caller's transaction stays usable, and the payment unchanged
        again = await service.refund(session, payment_id=uuid.UUID(payment["id"]), amount=100, reason="excess",
                                     gateway=runtime.payments)
        assert (again.status, again.refunded_amount) == ("partially_refunded", 100)
    assert await balance(client, user) == 0
    assert (await read_payment(client, user, payment["id"]))["refunded_amount"]["amount"] == 100
    await assert_money_invariants(runtime.db)


async def test_a_pending_payment_cannot_be_refunded(client: httpx.AsyncClient, runtime: Runtime,
                                                    user: Actor) -> None:
    payment = await topup(client, user, 1000)
    async with runtime.db.transaction() as session:
        with pytest.raises(PaymentNotRefundable) as refused:
            await service.refund(session, payment_id=uuid.UUID(payment["id"]), amount=100, reason="no",
                                 gateway=runtime.payments)
    assert refused.value.code == "invalid_transition"


async def test_concurrent_refunds_of_the_same_amount_refund_once(client: httpx.AsyncClient, runtime: Runtime,
                                                                 user: Actor) -> None:
    payment = await paid_topup(client, runtime, user, 1000)

    async def attempt() -> str:
        try:
            async with runtime.db.transaction() as session:
                await service.refund(session, payment_id=uuid.UUID(payment["id"]), amount=1000, reason="race",
                                     gateway=runtime.payments)
            return "refunded"
        except Exception as exc:  # the loser's error is what the test looks at
            return type(exc).__name__

    outcomes = await asyncio.gather(*(attempt() for _ in range(4)))
    assert outcomes.count("refunded") == 1, outcomes
    assert await balance(client, user) == 0
    await assert_money_invariants(runtime.db)


# --- the service, as other modules call it -----------------------------------------------------

async def test_start_payment_for_an_order_uses_the_configured_provider(client: httpx.AsyncClient, runtime: Runtime,
                                                                       user: Actor) -> None:
    order_id = uuid.uuid4()
    async with runtime.db.transaction() as session:
        payment = await service.start_payment(session, user_id=uuid.UUID(user.id), amount=1234, purpose="order",
                                              order_id=order_id, gateway=runtime.payments)
    assert (payment.status, payment.provider, payment.order_id, payment.purpose) == (
        "pending", "sandbox", order_id, "order")
    assert payment.checkout_url and payment.expires_at > payment.created_at
    created = (await events_of(runtime, str(payment.id)))[0]
    assert created.data["order_id"] == str(order_id) and created.data["purpose"] == "order"


async def test_a_refund_the_provider_refuses_is_undone_with_the_callers_transaction(
        client: httpx.AsyncClient, runtime: Runtime, user: Actor) -> None:
    # Confirmed by a webhook only: the sandbox's books never saw the money, so it refuses.
    payment = await succeeded_topup(client, runtime, user, 1000)
    with pytest.raises(ProviderError):
        async with runtime.db.transaction() as session:
            await service.refund(session, payment_id=uuid.UUID(payment["id"]), amount=1000, reason="excess",
                                 gateway=runtime.payments)
    read = await read_payment(client, user, payment["id"])
    assert (read["status"], read["refunded_amount"]["amount"]) == ("succeeded", 0)
    assert await balance(client, user) == 1000
    assert "payment.refunded" not in [e.type for e in await events_of(runtime, payment["id"])]
    await assert_money_invariants(runtime.db)
