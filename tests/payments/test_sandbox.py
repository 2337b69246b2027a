"""The sandbox provider end to end (PRODUCT M2): pay page, test cards, signed webhooks with
failure injection, the poller and expiry (DOMAIN.md "Payment", QUALITY M9)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest

from mercato.app.runtime import Runtime
from mercato.config import Settings
from mercato.kit.clock import utcnow
from mercato.models import Payment
from mercato.payments import service
from tests.support.actors import Actor
from tests.support.invariants import assert_money_invariants
from tests.support.payments import (
    V1,
    balance,
    credited_balance,
    credits_of,
    delivered,
    pay,
    pay_path,
    provider_ref,
    read_payment,
    topup,
)

SUCCEEDS, DECLINED, DELAYED, NEVER = "4242424242424242", "4000000000000002", "4000000000000077", "4000000000000341"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.sandbox_confirm_delay_seconds = 0.3
    return settings


async def status_of(client: httpx.AsyncClient, actor: Actor, payment_id: str) -> str:
    return str((await read_payment(client, actor, payment_id))["status"])


async def test_a_topup_paid_on_the_pay_page_credits_the_wallet_once(client: httpx.AsyncClient, runtime: Runtime,
                                                                    user: Actor) -> None:
    payment = await topup(client, user, 2500)
    assert payment["status"] == "pending" and payment["provider"] == "sandbox"
    page = await client.get(pay_path(payment))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "25.00 USD" in page.text and 'name="card_number"' in page.text
    assert 'value="approve"' in page.text and 'value="decline"' in page.text
    answered = await client.post(pay_path(payment), data={"card_number": "4242 4242 4242 4242", "action": "approve"})
    assert answered.status_code == 200 and 'data-status="succeeded"' in answered.text
    assert "This payment succeeded." in answered.text
    await delivered(runtime)
    assert await status_of(client, user, payment["id"]) == "succeeded"
    assert await credited_balance(client, user, 2500) == 2500
    movements = (await client.get(f"{V1}/wallet/transactions", headers=user.headers)).json()["items"]
    assert [(m["kind"], m["amount"]["amount"], m["payment_id"]) for m in movements] == [
        ("topup", 2500, payment["id"])]
    assert await credits_of(runtime, payment["id"]) == 1
    await assert_money_invariants(runtime.db)


async def test_a_declined_card_fails_the_payment_and_moves_no_money(client: httpx.AsyncClient, runtime: Runtime,
                                                                    user: Actor) -> None:
    payment = await topup(client, user, 1000)
    answered = await pay(client, payment, DECLINED)
    assert answered.status_code == 200 and 'data-status="failed"' in answered.text
    assert "This payment failed (card declined)." in answered.text
    await delivered(runtime)
    read = await read_payment(client, user, payment["id"])
    assert read["status"] == "failed" and read["failure_reason"] == "card declined"
    assert await balance(client, user) == 0
    await assert_money_invariants(runtime.db)


@pytest.mark.parametrize(("action", "status"), [("decline", "failed"), ("cancel", "canceled")])
async def test_the_payer_declining_or_canceling_closes_the_payment(client: httpx.AsyncClient, runtime: Runtime,
                                                                   user: Actor, action: str, status: str) -> None:
    payment = await topup(client, user, 1000)
    await pay(client, payment, "", action=action)
    await delivered(runtime)
    assert await status_of(client, user, payment["id"]) == status
    again = await client.post(pay_path(payment), data={"card_number": SUCCEEDS, "action": "approve"})
    assert again.status_code == 409  # a closed checkout cannot be paid any more
    await delivered(runtime)
    assert await status_of(client, user, payment["id"]) == status
    assert await balance(client, user) == 0
    await assert_money_invariants(runtime.db)


async def test_an_unknown_card_number_is_refused_and_the_checkout_stays_open(client: httpx.AsyncClient,
                                                                           runtime: Runtime, user: Actor) -> None:
    payment = await topup(client, user, 1000)
    answered = await pay(client, payment, "1234567812345678")
    assert answered.status_code == 422 and "test card" in answered.text
    assert 'name="card_number"' in answered.text
    assert await status_of(client, user, payment["id"]) == "pending"


async def test_the_delayed_card_confirms_after_its_delay(client: httpx.AsyncClient, runtime: Runtime,
                                                         user: Actor) -> None:
    payment = await topup(client, user, 1200)
    answered = await pay(client, payment, DELAYED)
    assert 'data-status="processing"' in answered.text
    assert await status_of(client, user, payment["id"]) == "pending"
    await delivered(runtime)  # the confirmation comes after the delay, with its webhook
    assert await status_of(client, user, payment["id"]) == "succeeded"
    assert await credited_balance(client, user, 1200) == 1200
    await assert_money_invariants(runtime.db)


async def test_the_provider_status_api_answers_from_the_sandbox_books(client: httpx.AsyncClient, runtime: Runtime,
                                                                      user: Actor) -> None:
    payment = await topup(client, user, 1000)
    ref = await provider_ref(runtime, payment["id"])
    before = (await client.get(f"/sandbox/api/payments/{ref}")).json()
    assert (before["status"], before["sandbox_status"], before["amount"]) == ("pending", "open", 1000)
    await pay(client, payment, NEVER)
    after = (await client.get(f"/sandbox/api/payments/{ref}")).json()
    assert (after["status"], after["sandbox_status"]) == ("pending", "processing")


async def test_a_dropped_webhook_is_caught_up_by_the_poller(client: httpx.AsyncClient, runtime: Runtime,
                                                            user: Actor) -> None:
    runtime.settings.sandbox_webhook_drop_probability = 1.0
    payment = await topup(client, user, 1500)
    await pay(client, payment, SUCCEEDS)
    await delivered(runtime)
    assert await status_of(client, user, payment["id"]) == "pending"  # the store was never told
    # Not due yet: the poller leaves it alone.
    assert await service.poll_due(runtime.db, gateway=runtime.payments) == 0
    looked = await service.poll_due(runtime.db, gateway=runtime.payments, now=utcnow() + timedelta(seconds=31))
    assert looked == 1
    assert await status_of(client, user, payment["id"]) == "succeeded"
    assert await credited_balance(client, user, 1500) == 1500
    await assert_money_invariants(runtime.db)


async def test_a_never_confirming_card_is_polled_with_backoff_then_expires(client: httpx.AsyncClient,
                                                                           runtime: Runtime, user: Actor) -> None:
    payment = await topup(client, user, 1000)
    await pay(client, payment, NEVER)
    start = utcnow()
    schedule = []
    for minutes in (1, 3, 7):
        await service.poll_due(runtime.db, gateway=runtime.payments, now=start + timedelta(minutes=minutes))
        async with runtime.db.read_session() as session:
            row = await session.get(Payment, uuid.UUID(payment["id"]))
            assert row is not None and row.status == "pending"
            schedule.append((row.poll_attempts, row.next_poll_at))
    attempts = [a for a, _ in schedule]
    assert attempts == [1, 2, 3]
    gaps = [(at - (start + timedelta(minutes=m))).total_seconds()
            for (_, at), m in zip(schedule, (1, 3, 7), strict=True)]
    assert gaps[0] < gaps[1] < gaps[2]  # exponential backoff
    await service.poll_due(runtime.db, gateway=runtime.payments, now=start + timedelta(minutes=31))
    read = await read_payment(client, user, payment["id"])
    assert read["status"] == "expired"
    ref = await provider_ref(runtime, payment["id"])
    assert (await client.get(f"/sandbox/api/payments/{ref}")).json()["status"] == "expired"
    assert await balance(client, user) == 0
    await assert_money_invariants(runtime.db)


async def test_an_unpaid_checkout_expires_and_can_no_longer_be_paid(client: httpx.AsyncClient, runtime: Runtime,
                                                                    user: Actor) -> None:
    payment = await topup(client, user, 1000)
    await service.poll_due(runtime.db, gateway=runtime.payments, now=utcnow() + timedelta(minutes=31))
    assert await status_of(client, user, payment["id"]) == "expired"
    late = await client.post(pay_path(payment), data={"card_number": SUCCEEDS, "action": "approve"})
    assert late.status_code == 409
    await delivered(runtime)
    assert await balance(client, user) == 0
    await assert_money_invariants(runtime.db)


async def test_duplicate_webhooks_credit_once(client: httpx.AsyncClient, runtime: Runtime, user: Actor) -> None:
    runtime.settings.sandbox_webhook_duplicate_probability = 1.0
    payment = await topup(client, user, 700)
    await pay(client, payment, SUCCEEDS)
    await delivered(runtime)
    assert await credited_balance(client, user, 700) == 700
    assert await credits_of(runtime, payment["id"]) == 1
    await assert_money_invariants(runtime.db)


async def test_a_late_webhook_after_the_poller_settled_changes_nothing(client: httpx.AsyncClient, runtime: Runtime,
                                                                       user: Actor) -> None:
    runtime.settings.sandbox_webhook_late_probability = 1.0
    runtime.settings.sandbox_webhook_late_seconds = 0.5
    payment = await topup(client, user, 900)
    await pay(client, payment, SUCCEEDS)
    # The poller asks before the late webhook arrives.
    await service.poll_due(runtime.db, gateway=runtime.payments, now=utcnow() + timedelta(seconds=31))
    assert await status_of(client, user, payment["id"]) == "succeeded"
    await delivered(runtime)
    assert await status_of(client, user, payment["id"]) == "succeeded"
    assert await credited_balance(client, user, 900) == 900
    assert await credits_of(runtime, payment["id"]) == 1
    await assert_money_invariants(runtime.db)


async def test_the_poller_runs_as_a_registered_sweep(runtime: Runtime) -> None:
    from mercato.bus.registry import load_handlers
    from mercato.bus.scheduler import SWEEPS

    load_handlers()
    assert "payments.poll" in SWEEPS


async def test_the_sandbox_routes_are_absent_when_switched_off(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mercato.access.dependencies import route_policies
    from mercato.app import create_app

    app = create_app(Settings(data_dir=tmp_path, testing=True, sandbox_payments_enabled=False))
    assert not [path for _, path in route_policies(app) if path.startswith("/sandbox")]

