"""The built-in sandbox provider (PRODUCT M2): a hosted pay page, test card numbers, its own
books (``sandbox_payments``), a status API, and signed webhooks with failure injection.

It behaves like an outside provider: its books are not the store's ``payments``; it tells
the store what happened only by webhook (signed exactly as documented, verified by the
same code path as any delivery to ``POST /payments/webhooks/sandbox``) or when asked (the
poller). Webhooks are sent after the payer's action from background tasks, so they can be
dropped, duplicated or delivered late on purpose (settings ``sandbox_webhook_*``).

Signature: ``Mercato-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``;
a timestamp more than :data:`TOLERANCE_SECONDS` away from now is refused as stale.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import random
import secrets
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.config import Settings
from mercato.kit.clock import utcnow
from mercato.kit.db import Database
from mercato.kit.errors import Conflict, NotFound, ValidationFailed, found_or_raise
from mercato.kit.logging import log
from mercato.kit.tasks import cancel_and_wait
from mercato.models import Payment, SandboxPayment
from mercato.payments import repository, service
from mercato.payments.errors import InvalidSignature, MalformedWebhook, ProviderError, StaleWebhook
from mercato.payments.providers import Checkout, Gateway, ProviderStatus, ReportedStatus, WebhookReport

NAME = "sandbox"
SIGNATURE_HEADER = "Mercato-Signature"
TOLERANCE_SECONDS = 300

CARD_SUCCEEDS = "4242424242424242"
CARD_DECLINED = "4000000000000002"
CARD_DELAYED = "4000000000000077"
CARD_NEVER_CONFIRMS = "4000000000000341"
TEST_CARDS: dict[str, str] = {
    CARD_SUCCEEDS: "succeeds at once",
    CARD_DECLINED: "is declined",
    CARD_DELAYED: "confirms after a delay",
    CARD_NEVER_CONFIRMS: "never confirms (only the poller and expiry resolve it)",
}

# The sandbox's own states, and what the port reports for each.
_REPORTED: dict[str, ReportedStatus] = {"open": "pending", "processing": "pending", "succeeded": "succeeded",
                                        "failed": "failed", "canceled": "canceled", "expired": "expired"}
_EVENT_STATUS: dict[str, ReportedStatus] = {f"payment.{s}": s for s in ("succeeded", "failed", "canceled", "expired")}

PayAction = Literal["approve", "decline", "cancel"]


class SandboxCheckoutNotFound(NotFound):
    code, title = "sandbox_payment_not_found", "The sandbox has no checkout for this payment"


class SandboxCheckoutClosed(Conflict):
    code, title = "sandbox_payment_closed", "This checkout is no longer open"


class UnknownTestCard(ValidationFailed):
    code, title = "unknown_test_card", "Use one of the sandbox's test card numbers"


# --- signing ------------------------------------------------------------------------------------

def resolve_secret(settings: Settings) -> str:
    """The configured secret, or one generated once into the data dir (like the secret key)."""
    if settings.sandbox_webhook_secret is not None:
        return settings.sandbox_webhook_secret.get_secret_value()
    path = settings.data_dir / "sandbox-webhook.secret"
    if path.exists():
        return path.read_text().strip()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    value = "whsec_sbx_" + secrets.token_urlsafe(32)
    try:  # O_EXCL: processes starting together end up with the same secret
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


def signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """The headers of a signed delivery of ``body``."""
    at = int(utcnow().timestamp()) if timestamp is None else timestamp
    return {SIGNATURE_HEADER: f"t={at},v1={signature(secret, at, body)}", "Content-Type": "application/json"}


def verify(secret: str, body: bytes, header: str | None, *, now: datetime,
           tolerance: int = TOLERANCE_SECONDS) -> None:
    """Raise InvalidSignature or StaleWebhook unless ``header`` signs ``body`` recently."""
    if not header:
        raise InvalidSignature(f"Send the {SIGNATURE_HEADER} header.")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise InvalidSignature(f"{SIGNATURE_HEADER} must be t=<unix seconds>,v1=<hex HMAC-SHA256>.")
    expected = signature(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise InvalidSignature("The signature does not match the body.")
    if abs(now.timestamp() - timestamp) > tolerance:
        raise StaleWebhook(f"The webhook was signed at {timestamp}, more than {tolerance} s from now.")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


# --- the provider ---------------------------------------------------------------------------------

class SandboxProvider:
    name = NAME

    def __init__(self, settings: Settings, *, store: Gateway, rng: random.Random | None = None) -> None:
        self.settings = settings
        # The store's gateway, whose service receives the webhooks (as its webhook endpoint would).
        self.store = store
        self.secret = resolve_secret(settings)
        self.random = rng or random.Random()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- the port --

    async def create(self, session: AsyncSession, *, payment: Payment) -> Checkout:
        ref = f"sbx_{uuid.uuid4().hex}"
        now = utcnow()
        await repository.sandbox_open(session, SandboxPayment(
            ref=ref, merchant_payment_id=payment.id, amount=payment.amount, currency=payment.currency,
            status="open", refunded_amount=0, created_at=now, updated_at=now))
        return Checkout(provider_ref=ref,
                        checkout_url=f"{self.settings.public_url.rstrip('/')}/sandbox/pay/{payment.id}")

    async def status(self, session: AsyncSession, *, provider_ref: str) -> ProviderStatus:
        row = await repository.sandbox_by_ref(session, provider_ref)
        if row is None:
            raise ProviderError(f"The sandbox knows no payment {provider_ref!r}.")
        return report_of(row, utcnow())

    async def cancel(self, session: AsyncSession, *, provider_ref: str) -> ProviderStatus:
        now = utcnow()
        await repository.sandbox_close_unpaid(session, provider_ref, to="expired", now=now)
        return await self.status(session, provider_ref=provider_ref)

    async def refund(self, session: AsyncSession, *, provider_ref: str, amount: int, idempotency_key: str) -> None:
        now = utcnow()
        # A delayed card whose confirming task died with its process is paid all the same.
        await repository.sandbox_confirm_due(session, provider_ref, now=now)
        if not await repository.sandbox_refund(session, provider_ref, amount, now=now):
            raise ProviderError(f"The sandbox refused to refund {amount} of {provider_ref!r}.")

    def verify_webhook(self, body: bytes, headers: Mapping[str, str], *, now: datetime) -> WebhookReport:
        verify(self.secret, body, _header(headers, SIGNATURE_HEADER), now=now)
        try:
            event = json.loads(body)
            event_id, event_type, data = event["id"], event["type"], event["data"]
            provider_ref = data["provider_ref"]
            payment_id = data.get("merchant_payment_id")
            if not (isinstance(event_id, str) and isinstance(event_type, str) and isinstance(provider_ref, str)):
                raise TypeError
        except (ValueError, TypeError, KeyError, AttributeError):
            raise MalformedWebhook("Expected {id, type, data: {provider_ref, …}} as JSON.") from None
        reason = data.get("reason")
        return WebhookReport(event_id=event_id, event_type=event_type, provider_ref=provider_ref,
                             status=_EVENT_STATUS.get(event_type), reason=reason if isinstance(reason, str) else None,
                             payment_id=payment_id if isinstance(payment_id, str) else None)

    # -- the payer's side (the pay page) --

    async def checkout(self, session: AsyncSession, payment_id: uuid.UUID) -> SandboxPayment:
        return found_or_raise(await repository.sandbox_by_payment(session, payment_id),
                              SandboxCheckoutNotFound, f"The sandbox has no checkout for payment {payment_id}.")

    async def pay(self, session: AsyncSession, db: Database, *, payment_id: uuid.UUID, action: PayAction,
                  card_number: str = "") -> SandboxPayment:
        """The payer approves (with a test card), declines or cancels. The webhook follows
        from a background task once this transaction is done."""
        row = await self.checkout(session, payment_id)
        now = utcnow()
        if row.status != "open":
            raise SandboxCheckoutClosed(f"This checkout is {row.status}.")
        card = "".join(card_number.split())
        if action == "approve" and card not in TEST_CARDS:
            raise UnknownTestCard("Use a test card: " + ", ".join(f"{n} {w}" for n, w in TEST_CARDS.items()) + ".")
        last4 = card[-4:] if action == "approve" else None
        if action == "cancel":
            changes: dict[str, Any] = {"status": "canceled", "reason": "canceled by the payer"}
        elif action == "decline":
            changes = {"status": "failed", "reason": "declined by the payer"}
        elif card == CARD_DECLINED:
            changes = {"status": "failed", "reason": "card declined", "card_last4": last4}
        elif card == CARD_SUCCEEDS:
            changes = {"status": "succeeded", "card_last4": last4}
        elif card == CARD_DELAYED:
            changes = {"status": "processing", "card_last4": last4,
                       "confirm_at": now + timedelta(seconds=self.settings.sandbox_confirm_delay_seconds)}
        else:  # CARD_NEVER_CONFIRMS
            changes = {"status": "processing", "card_last4": last4, "confirm_at": None}
        if not await repository.sandbox_move(session, row.ref, from_status="open", now=now, **changes):
            raise SandboxCheckoutClosed("This checkout was closed meanwhile.")
        row = await self.checkout(session, payment_id)
        if row.status == "processing" and row.confirm_at is not None:
            self._spawn(self._confirm_later(db, row.ref, self.settings.sandbox_confirm_delay_seconds))
        elif row.status != "processing":
            self.send_webhook(db, row)
        return row

    async def _confirm_later(self, db: Database, ref: str, delay: float) -> None:
        await asyncio.sleep(delay)
        async with db.transaction() as session:
            confirmed = await repository.sandbox_confirm_due(session, ref, now=utcnow())
            row = await repository.sandbox_by_ref(session, ref)
        if confirmed and row is not None:
            self.send_webhook(db, row)

    # -- webhooks --

    def event_body(self, row: SandboxPayment, *, status: str | None = None) -> bytes:
        state = status or row.status
        return json.dumps({
            "id": f"evt_{uuid.uuid4().hex}", "type": f"payment.{state}", "created": int(utcnow().timestamp()),
            "data": {"provider_ref": row.ref, "merchant_payment_id": str(row.merchant_payment_id),
                     "amount": row.amount, "currency": row.currency, "status": state, "reason": row.reason},
        }, separators=(",", ":")).encode()

    def send_webhook(self, db: Database, row: SandboxPayment) -> None:
        """Deliver the webhook of ``row``'s current state, through the failure injection."""
        settings = self.settings
        if self.random.random() < settings.sandbox_webhook_drop_probability:
            log.info("sandbox: webhook dropped on purpose", ref=row.ref, status=row.status)
            return
        body = self.event_body(row)
        copies = 2 if self.random.random() < settings.sandbox_webhook_duplicate_probability else 1
        late = self.random.random() < settings.sandbox_webhook_late_probability
        delay = settings.sandbox_webhook_late_seconds if late else 0.0
        for _ in range(copies):
            self._spawn(self._deliver(db, body, delay))

    async def _deliver(self, db: Database, body: bytes, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        headers = sign(self.secret, body)  # signed when sent, as a real provider does
        try:
            async with db.transaction() as session:
                await service.receive_webhook(session, gateway=self.store, provider=NAME, body=body,
                                              headers=headers)
        except Exception as exc:  # a provider logs a failed delivery; the poller catches up
            log.warning("sandbox: webhook delivery failed", error=f"{type(exc).__name__}: {exc}")

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait until every webhook already scheduled was delivered (or dropped)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        await cancel_and_wait(list(self._tasks), what="sandbox webhooks")


def report_of(row: SandboxPayment, now: datetime) -> ProviderStatus:
    """What the sandbox answers about ``row``: a delayed card counts as confirmed once its
    time has come, even if the task that confirms it died with its process."""
    if row.status == "processing" and row.confirm_at is not None and row.confirm_at <= now:
        return ProviderStatus("succeeded")
    return ProviderStatus(_REPORTED[row.status], row.reason)
