"""The Stripe adapter (docs/payments.md "Stripe"): Checkout Session creation through the SDK
with its HTTP client injected (never api.stripe.com), and stored sample webhooks signed here
with a test secret — good, replayed, tampered, stale — through the HTTP endpoint."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import stripe

from mercato.app.runtime import Runtime
from mercato.config import Settings
from mercato.kit.clock import utcnow
from mercato.payments import service
from mercato.payments.providers.stripe import StripeProvider
from tests.support.actors import Actor
from tests.support.invariants import assert_money_invariants
from tests.support.payments import (
    balance,
    credited_balance,
    credits_of,
    post_webhook,
    provider_ref,
    read_payment,
    topup,
)

PAYLOADS = Path(__file__).parent / "stripe_payloads"
WEBHOOK_SECRET = "whsec_test_0123456789abcdef0123456789abcdef"
AMOUNT = 1000  # the stored payloads' amount


class FakeStripe:
    """Stripe's API as the SDK's HTTP client sees it: records every request, answers from the
    stored payloads. Sessions it created answer ``retrieve`` with what the test set."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.sessions: dict[str, dict[str, Any]] = {}

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert request.url.host == "api.stripe.com"
        path = request.url.path
        if request.method == "POST" and path == "/v1/checkout/sessions":
            form = parse_qs(request.content.decode())
            session_id = f"cs_test_{uuid.uuid4().hex}"
            body = payload("checkout.session.create.response.json", session_id, form["client_reference_id"][0])
            self.sessions[session_id] = body
            return httpx.Response(200, json=body)
        if request.method == "GET" and path.startswith("/v1/checkout/sessions/"):
            found = self.sessions.get(path.rsplit("/", 1)[1])
            if found is None:
                return httpx.Response(404, json={"error": {"type": "invalid_request_error", "message": "No such"}})
            return httpx.Response(200, json=found)
        if request.method == "POST" and path.endswith("/expire"):
            session_id = path.split("/")[-2]
            found = self.sessions[session_id]
            if found["status"] != "open":
                return httpx.Response(400, json={"error": {"type": "invalid_request_error",
                                                           "message": "Only open sessions can be expired."}})
            found["status"] = "expired"
            return httpx.Response(200, json=found)
        return httpx.Response(404, json={"error": {"type": "invalid_request_error", "message": f"no route {path}"}})

    def created(self) -> list[dict[str, list[str]]]:
        return [parse_qs(r.content.decode()) for r in self.requests
                if r.method == "POST" and r.url.path == "/v1/checkout/sessions"]


def payload(name: str, session_id: str, payment_id: str) -> dict[str, Any]:
    text = (PAYLOADS / name).read_text().replace("__SESSION_ID__", session_id).replace("__PAYMENT_ID__", payment_id)
    return json.loads(text)  # type: ignore[no-any-return]


def stripe_signed(body: bytes, *, timestamp: int | None = None, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    at = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={at},v1={digest}"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return Settings(**{**settings.model_dump(), "payment_provider": "stripe",
                       "stripe_secret_key": "sk_test_not_a_real_key", "stripe_webhook_secret": WEBHOOK_SECRET})


@pytest.fixture
def fake_stripe(runtime: Runtime) -> FakeStripe:
    fake = FakeStripe()
    http_client = stripe.HTTPXClient()
    http_client._client_async = httpx.AsyncClient(transport=httpx.MockTransport(fake.handle))
    runtime.payments.providers["stripe"] = StripeProvider(runtime.settings, http_client=http_client)
    return fake


async def stripe_topup(client: httpx.AsyncClient, runtime: Runtime, user: Actor) -> tuple[dict[str, Any], str]:
    payment = await topup(client, user, AMOUNT)
    return payment, await provider_ref(runtime, payment["id"])


def event_body(name: str, session_id: str, payment_id: str) -> bytes:
    return json.dumps(payload(name, session_id, payment_id)).encode()


async def test_a_topup_creates_a_checkout_session_through_the_sdk(client: httpx.AsyncClient, runtime: Runtime,
                                                                  user: Actor, fake_stripe: FakeStripe) -> None:
    payment, session_id = await stripe_topup(client, runtime, user)
    assert payment["provider"] == "stripe" and payment["status"] == "pending"
    assert payment["checkout_url"].startswith(f"https://checkout.stripe.com/c/pay/{session_id}")
    [params] = fake_stripe.created()
    assert params["mode"] == ["payment"] and params["client_reference_id"] == [payment["id"]]
    assert params["metadata[payment_id]"] == [payment["id"]]
    assert params["line_items[0][price_data][unit_amount]"] == [str(AMOUNT)]
    assert params["line_items[0][price_data][currency]"] == ["usd"]
    assert int(params["expires_at"][0]) > time.time() + 30 * 60
    request = fake_stripe.requests[0]
    assert request.headers["Idempotency-Key"] == f"mercato-payment-{payment['id']}"
    assert request.headers["Authorization"] == "Bearer sk_test_not_a_real_key"


async def test_a_signed_completed_event_credits_once_and_replays_change_nothing(
        client: httpx.AsyncClient, runtime: Runtime, user: Actor, fake_stripe: FakeStripe) -> None:
    payment, session_id = await stripe_topup(client, runtime, user)
    body = event_body("checkout.session.completed.json", session_id, payment["id"])
    headers = stripe_signed(body)
    first = await post_webhook(client, body, headers, provider="stripe")
    assert first.status_code == 200 and first.json()["effect"] == "succeeded", first.text
    again = await post_webhook(client, body, headers, provider="stripe")
    assert again.status_code == 200 and again.json()["effect"] == "duplicate"
    assert await credited_balance(client, user, AMOUNT) == AMOUNT
    assert await credits_of(runtime, payment["id"]) == 1
    await assert_money_invariants(runtime.db)


@pytest.mark.parametrize("case", ["tampered", "stale", "wrong-secret", "no-header"])
async def test_a_bad_stripe_webhook_is_refused_and_changes_nothing(
        client: httpx.AsyncClient, runtime: Runtime, user: Actor, fake_stripe: FakeStripe, case: str) -> None:
    payment, session_id = await stripe_topup(client, runtime, user)
    body = event_body("checkout.session.completed.json", session_id, payment["id"])
    expected = "invalid_signature"
    if case == "tampered":
        headers = stripe_signed(body)
        body = body.replace(b'"amount_total": 1000', b'"amount_total": 1')
    elif case == "stale":
        headers, expected = stripe_signed(body, timestamp=int(time.time()) - 301), "stale_webhook"
    elif case == "wrong-secret":
        headers = stripe_signed(body, secret="whsec_someone_else")
    else:
        headers = {}
    answered = await post_webhook(client, body, headers, provider="stripe")
    assert answered.status_code == 400 and answered.json()["code"] == expected, answered.text
    assert (await read_payment(client, user, payment["id"]))["status"] == "pending"
    assert await balance(client, user) == 0
    await assert_money_invariants(runtime.db)


async def test_an_asynchronous_payment_waits_for_its_outcome(client: httpx.AsyncClient, runtime: Runtime,
                                                             user: Actor, fake_stripe: FakeStripe) -> None:
    payment, session_id = await stripe_topup(client, runtime, user)
    for name, effect in (("checkout.session.completed.unpaid.json", "pending"),
                         ("checkout.session.async_payment_failed.json", "failed"),
                         ("checkout.session.async_payment_succeeded.json", "duplicate")):
        body = event_body(name, session_id, payment["id"])
        answered = await post_webhook(client, body, stripe_signed(body), provider="stripe")
        assert answered.status_code == 200 and answered.json()["effect"] == effect, (name, answered.text)
    assert (await read_payment(client, user, payment["id"]))["status"] == "failed"
    assert await balance(client, user) == 0


async def test_an_asynchronous_payment_that_succeeds_credits_the_wallet(
        client: httpx.AsyncClient, runtime: Runtime, user: Actor, fake_stripe: FakeStripe) -> None:
    payment, session_id = await stripe_topup(client, runtime, user)
    body = event_body("checkout.session.async_payment_succeeded.json", session_id, payment["id"])
    assert (await post_webhook(client, body, stripe_signed(body), provider="stripe")).json()["effect"] == "succeeded"
    assert await credited_balance(client, user, AMOUNT) == AMOUNT
    await assert_money_invariants(runtime.db)


async def test_an_expired_session_expires_the_payment(client: httpx.AsyncClient, runtime: Runtime, user: Actor,
                                                      fake_stripe: FakeStripe) -> None:
    payment, session_id = await stripe_topup(client, runtime, user)
    body = event_body("checkout.session.expired.json", session_id, payment["id"])
    assert (await post_webhook(client, body, stripe_signed(body), provider="stripe")).json()["effect"] == "expired"
    assert (await read_payment(client, user, payment["id"]))["status"] == "expired"


async def test_other_event_types_are_acknowledged_and_ignored(client: httpx.AsyncClient, runtime: Runtime,
                                                              fake_stripe: FakeStripe) -> None:
    body = (PAYLOADS / "payment_intent.created.json").read_bytes()
    answered = await post_webhook(client, body, stripe_signed(body), provider="stripe")
    assert answered.status_code == 200 and answered.json()["effect"] == "ignored"


async def test_the_poller_asks_stripe_and_settles_a_paid_session(client: httpx.AsyncClient, runtime: Runtime,
                                                                 user: Actor, fake_stripe: FakeStripe) -> None:
    payment, session_id = await stripe_topup(client, runtime, user)
    fake_stripe.sessions[session_id].update(status="complete", payment_status="paid")
    await service.poll_due(runtime.db, gateway=runtime.payments, now=utcnow() + timedelta(seconds=31))
    assert (await read_payment(client, user, payment["id"]))["status"] == "succeeded"
    assert await credited_balance(client, user, AMOUNT) == AMOUNT
    await assert_money_invariants(runtime.db)


async def test_the_poller_expires_an_unpaid_session_at_stripe_first(client: httpx.AsyncClient, runtime: Runtime,
                                                                    user: Actor, fake_stripe: FakeStripe) -> None:
    payment, session_id = await stripe_topup(client, runtime, user)
    await service.poll_due(runtime.db, gateway=runtime.payments, now=utcnow() + timedelta(minutes=31))
    assert fake_stripe.sessions[session_id]["status"] == "expired"
    assert any(r.url.path.endswith(f"{session_id}/expire") for r in fake_stripe.requests)
    assert (await read_payment(client, user, payment["id"]))["status"] == "expired"
