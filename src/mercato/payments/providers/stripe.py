"""The Stripe adapter: Checkout Sessions through the ``stripe`` SDK, verified webhooks.

Enabled when ``stripe_secret_key`` and ``stripe_webhook_secret`` are set; chosen for new
payments with ``payment_provider = "stripe"``. The store's payment id travels as the
session's ``client_reference_id`` and ``metadata.payment_id``; the session id is the
payment's ``provider_ref``.

Webhook events and what they do (docs/payments.md):

| event | payment |
| --- | --- |
| ``checkout.session.completed`` with ``payment_status`` ``paid``/``no_payment_required`` | succeeded |
| ``checkout.session.completed`` otherwise (an asynchronous method still clearing) | stays pending |
| ``checkout.session.async_payment_succeeded`` | succeeded |
| ``checkout.session.async_payment_failed`` | failed |
| ``checkout.session.expired`` | expired |
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import stripe
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.config import Settings
from mercato.models import Payment
from mercato.payments.errors import InvalidSignature, MalformedWebhook, ProviderError, StaleWebhook
from mercato.payments.providers import Checkout, ProviderStatus, ReportedStatus, WebhookReport

NAME = "stripe"
SIGNATURE_HEADER = "Stripe-Signature"
TOLERANCE_SECONDS = 300
# Stripe refuses a Checkout Session that expires sooner than 30 minutes or later than 24 hours.
MIN_EXPIRY_SECONDS = 30 * 60 + 60
MAX_EXPIRY_SECONDS = 24 * 3600 - 60


class StripeProvider:
    name = NAME

    def __init__(self, settings: Settings, *, http_client: stripe.HTTPClient | None = None) -> None:
        assert settings.stripe_secret_key is not None and settings.stripe_webhook_secret is not None
        self.settings = settings
        self.webhook_secret = settings.stripe_webhook_secret.get_secret_value()
        self.http_client = http_client or stripe.HTTPXClient()
        self.client = stripe.StripeClient(settings.stripe_secret_key.get_secret_value(), http_client=self.http_client,
                                          max_network_retries=2)

    # -- the port --

    async def create(self, session: AsyncSession, *, payment: Payment) -> Checkout:
        base = self.settings.public_url.rstrip("/")
        lifetime = int((payment.expires_at - payment.created_at).total_seconds())
        expires_at = int(payment.created_at.timestamp()) + min(max(lifetime, MIN_EXPIRY_SECONDS), MAX_EXPIRY_SECONDS)
        params: dict[str, Any] = {
            "mode": "payment",
            "client_reference_id": str(payment.id),
            "metadata": {"payment_id": str(payment.id), "purpose": payment.purpose},
            "line_items": [{"quantity": 1, "price_data": {
                "currency": payment.currency.lower(), "unit_amount": payment.amount,
                "product_data": {"name": "Wallet top-up" if payment.purpose == "topup" else "Order payment"}}}],
            "success_url": f"{base}/wallet?payment={payment.id}",
            "cancel_url": f"{base}/wallet?payment={payment.id}&canceled=1",
            "expires_at": expires_at,
        }
        try:
            created = await self.client.v1.checkout.sessions.create_async(
                params, {"idempotency_key": f"mercato-payment-{payment.id}"})  # type: ignore[arg-type]
        except stripe.StripeError as exc:
            raise ProviderError(f"Stripe refused the checkout: {exc.user_message or exc}") from None
        if not created.url:
            raise ProviderError("Stripe returned a checkout session without a URL.")
        return Checkout(provider_ref=created.id, checkout_url=created.url)

    async def status(self, session: AsyncSession, *, provider_ref: str) -> ProviderStatus:
        try:
            found = await self.client.v1.checkout.sessions.retrieve_async(provider_ref)
        except stripe.StripeError as exc:
            raise ProviderError(f"Stripe: {exc.user_message or exc}") from None
        return session_status(found.status, found.payment_status)

    async def cancel(self, session: AsyncSession, *, provider_ref: str) -> ProviderStatus:
        try:
            await self.client.v1.checkout.sessions.expire_async(provider_ref)
        except stripe.InvalidRequestError:
            pass  # no longer open (completed or expired): the status below says which
        except stripe.StripeError as exc:
            raise ProviderError(f"Stripe: {exc.user_message or exc}") from None
        return await self.status(session, provider_ref=provider_ref)

    async def refund(self, session: AsyncSession, *, provider_ref: str, amount: int, idempotency_key: str) -> None:
        try:
            found = await self.client.v1.checkout.sessions.retrieve_async(provider_ref)
            intent = found.payment_intent
            intent_id = intent if isinstance(intent, str) else getattr(intent, "id", None)
            if not intent_id:
                raise ProviderError(f"Stripe session {provider_ref} has no payment to refund.")
            await self.client.v1.refunds.create_async(
                {"payment_intent": intent_id, "amount": amount},
                {"idempotency_key": f"mercato-{idempotency_key}"})
        except stripe.StripeError as exc:
            raise ProviderError(f"Stripe refused the refund: {exc.user_message or exc}") from None

    def verify_webhook(self, body: bytes, headers: Mapping[str, str], *, now: datetime) -> WebhookReport:
        header = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER.lower()), None)
        try:
            # The signature first (tolerance checked below), so a tampered old body is "invalid".
            stripe.WebhookSignature.verify_header(body, header, self.webhook_secret, tolerance=None)
        except stripe.SignatureVerificationError as exc:
            raise InvalidSignature(f"Stripe signature: {exc.user_message or exc}") from None
        timestamp = _timestamp(header or "")
        if timestamp is None or abs(now.timestamp() - timestamp) > TOLERANCE_SECONDS:
            raise StaleWebhook(f"The webhook was signed more than {TOLERANCE_SECONDS} s from now.")
        try:
            event = json.loads(body)
            event_id, event_type = event["id"], event["type"]
            obj = event["data"]["object"]
            if not (isinstance(event_id, str) and isinstance(event_type, str) and isinstance(obj, dict)):
                raise TypeError
        except (ValueError, TypeError, KeyError):
            raise MalformedWebhook("Expected a Stripe event: {id, type, data: {object: {…}}}.") from None
        if not event_type.startswith("checkout.session."):
            return WebhookReport(event_id=event_id, event_type=event_type, provider_ref=None, status=None)
        ref = obj.get("id")
        if not isinstance(ref, str):
            raise MalformedWebhook("A checkout.session event without the session's id.")
        status: ReportedStatus | None
        if event_type == "checkout.session.completed":
            status = "succeeded" if obj.get("payment_status") in ("paid", "no_payment_required") else "pending"
        else:
            status = {"checkout.session.async_payment_succeeded": "succeeded",
                      "checkout.session.async_payment_failed": "failed",
                      "checkout.session.expired": "expired"}.get(event_type)  # type: ignore[assignment]
        reference = obj.get("client_reference_id")
        return WebhookReport(event_id=event_id, event_type=event_type, provider_ref=ref, status=status,
                             reason="the payment failed at Stripe" if status == "failed" else None,
                             payment_id=reference if isinstance(reference, str) else None)

    async def close(self) -> None:
        try:
            await self.http_client.close_async()
        except (NotImplementedError, RuntimeError):
            pass


def session_status(status: str | None, payment_status: str | None) -> ProviderStatus:
    """A Checkout Session's ``status`` and ``payment_status`` as the port reports them."""
    if status == "complete" and payment_status in ("paid", "no_payment_required"):
        return ProviderStatus("succeeded")
    if status == "expired":
        return ProviderStatus("expired")
    return ProviderStatus("pending")  # open, or complete with an asynchronous payment still clearing


def _timestamp(header: str) -> int | None:
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            return int(value)
    return None
