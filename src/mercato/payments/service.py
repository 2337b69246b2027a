"""Provider payments (DOMAIN.md "Payment"): top-ups and order shortfalls.

States: ``created → pending → succeeded | failed | canceled | expired``;
``succeeded → partially_refunded → refunded``, ``succeeded → refunded``. Every move is a
guarded update from the states listed in :data:`ALLOWED_FROM`, so a duplicate, replayed or
out-of-order report (webhook or poll) finds the payment moved already and changes nothing:
no payment goes backwards and ``payment.succeeded`` (which the wallet credits, by the
reference ``payment:<id>``) is published once.

Callers own the transaction (an endpoint, a bus handler, the poller); nothing here commits,
except :func:`poll_due`, which is a sweep and opens its own short transactions. Callers hand
in the store's payment gateway too (``Runtime.payments``: a request's runtime, or the runtime
of the bus running a handler or sweep).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.audit.actions import AuditAction
from mercato.audit.service import record as audit
from mercato.audit.service import record_system as audit_system
from mercato.bus.events import CloudEvent
from mercato.bus.outbox import publish
from mercato.config import Settings
from mercato.kit.clock import utcnow
from mercato.kit.db import Database, refresh_if_held
from mercato.kit.errors import ValidationFailed, found_or_raise
from mercato.kit.logging import log
from mercato.kit.metrics import REGISTRY, count_on_commit
from mercato.ledger import accounts
from mercato.ledger import service as ledger
from mercato.ledger.errors import InsufficientFunds
from mercato.ledger.service import transfer
from mercato.models import Payment
from mercato.payments import repository
from mercato.payments.errors import (
    PaymentChangedConcurrently,
    PaymentNotFound,
    PaymentNotRefundable,
    ProviderError,
    RefundTooLarge,
    UnknownProvider,
)
from mercato.payments.providers import FINAL_REPORTS, Gateway, PaymentProvider
from mercato.policies import service as policies

# Gateway: the type callers hand in (the runtime's ``payments``), re-exported for other modules.
__all__ = ["ALLOWED_FROM", "OPEN", "Gateway", "poll_due", "receive_webhook", "refund", "start_payment"]

OPEN = frozenset({"created", "pending"})
REFUNDABLE = frozenset({"succeeded", "partially_refunded"})
ALLOWED_FROM: dict[str, frozenset[str]] = {
    "pending": frozenset({"created"}),
    "succeeded": OPEN,
    "failed": OPEN,
    "canceled": OPEN,
    "expired": OPEN,
    "partially_refunded": REFUNDABLE,
    "refunded": REFUNDABLE,
}
Purpose = Literal["topup", "order"]

# O3: payment outcomes (counted when the transition is made; a rolled-back one may count).
PAYMENT_OUTCOMES = Counter("mercato_payment_outcomes_total", "Payments reaching a final state, by provider and status.",
                           ["provider", "status"], registry=REGISTRY)


def payment_data(payment: Payment, **extra: Any) -> dict[str, Any]:
    """The data of every ``payment.*`` event (bus/events.py)."""
    return {"payment_id": str(payment.id), "user_id": str(payment.user_id), "provider": payment.provider,
            "purpose": payment.purpose, "order_id": str(payment.order_id) if payment.order_id else None,
            "amount": payment.amount, "currency": payment.currency, "status": payment.status, **extra}


async def _announce(session: AsyncSession, payment: Payment, event_type: str | None = None, **extra: Any) -> None:
    await publish(session, CloudEvent(type=event_type or f"payment.{payment.status}", subject=str(payment.id),
                                      data=payment_data(payment, **extra)))


# --- starting -------------------------------------------------------------------------------------

async def start_payment(session: AsyncSession, *, user_id: uuid.UUID, amount: int, purpose: Purpose,
                        gateway: Gateway, order_id: uuid.UUID | None = None) -> Payment:
    """Create a payment with the gateway's default provider: ``pending``, with the provider's
    ``checkout_url`` for the payer, expiring after the policy's ``payment_expire_seconds``.
    Publishes ``payment.created``."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValidationFailed("A payment's amount is a positive integer in minor units.")
    if purpose not in ("topup", "order") or (purpose == "order") != (order_id is not None):
        raise ValidationFailed("A payment is a top-up (no order) or pays an order (with its id).")
    settings = gateway.settings
    provider = gateway.default()
    rules = await policies.current(session)
    now = utcnow()
    payment = Payment(id=uuid.uuid4(), user_id=user_id, provider=provider.name, purpose=purpose, order_id=order_id,
                      amount=amount, currency=settings.currency, status="created", refunded_amount=0,
                      expires_at=now + timedelta(seconds=rules.payment_expire_seconds),
                      next_poll_at=now + timedelta(seconds=rules.payment_poll_after_seconds), poll_attempts=0,
                      created_at=now, updated_at=now)
    repository.add(session, payment)
    await session.flush()
    checkout = await provider.create(session, payment=payment)
    moved = await repository.move(session, payment.id, allowed=ALLOWED_FROM["pending"], to="pending",
                                  provider_ref=checkout.provider_ref, checkout_url=checkout.checkout_url)
    assert moved is not None  # created in this transaction
    await publish(session, CloudEvent(type="payment.created", subject=str(moved.id), data=payment_data(moved)))
    await audit(session, actor_id=user_id, actor_email=None, action=AuditAction.payment_create, resource_type="payment",
                resource_id=moved.id, after={"status": moved.status, "purpose": purpose, "order_id": order_id,
                                             "amount": amount, "currency": moved.currency, "provider": moved.provider})
    return moved


# --- what the provider reports -------------------------------------------------------------------

async def settle(session: AsyncSession, payment: Payment, status: str, *, reason: str | None = None) -> bool:
    """Apply a final status the provider reported; True when the payment moved now (False:
    it was final already — a duplicate, or a report arriving out of order)."""
    if status not in FINAL_REPORTS:
        return False
    now = utcnow()
    values: dict[str, Any] = {"next_poll_at": None, "updated_at": now}
    if status == "succeeded":
        values["succeeded_at"] = now
    elif reason:
        values["failure_reason"] = reason[:2000]
    was = payment.status
    moved = await repository.move(session, payment.id, allowed=ALLOWED_FROM[status], to=status, **values)
    if moved is None:
        current = await repository.get(session, payment.id)
        if status == "succeeded" and current is not None and current.status in ("failed", "canceled", "expired"):
            # The provider closes a checkout before the store gives up on it (poll_due), so this
            # means a provider broke that promise: money to return by hand, loudly.
            log.error("payments: provider reports success of a closed payment", payment_id=str(payment.id),
                      status=current.status, provider=payment.provider)
        return False
    await _announce(session, moved)
    await audit_system(session, action=AuditAction.payment_settle, resource_type="payment", resource_id=moved.id,
                       before={"status": was},
                       after={"status": moved.status, "amount": moved.amount, "reason": reason})
    count_on_commit(session, PAYMENT_OUTCOMES.labels(moved.provider, moved.status))  # once, not per retry
    return True


async def receive_webhook(session: AsyncSession, *, gateway: Gateway, provider: str, body: bytes,
                          headers: Mapping[str, str]) -> str:
    """Verify a provider's webhook and apply it. Returns what it did: ``succeeded`` (etc.,
    the payment moved), ``duplicate`` (nothing to do), ``ignored`` (an event type the store
    does not act on) or ``unknown_payment``. Raises UnknownProvider (404), InvalidSignature,
    StaleWebhook or MalformedWebhook (400): nothing changes then."""
    adapter = gateway.provider(provider)
    report = adapter.verify_webhook(body, headers, now=utcnow())
    if report.status is None:
        return "ignored"
    payment = None
    if report.provider_ref is not None:
        payment = await repository.by_provider_ref(session, provider, report.provider_ref)
    if payment is None and report.payment_id is not None:
        try:
            candidate = await repository.get(session, uuid.UUID(report.payment_id))
        except ValueError:
            candidate = None
        if candidate is not None and candidate.provider == provider:
            payment = candidate
    if payment is None:
        log.warning("payments: webhook for an unknown payment", provider=provider, event_id=report.event_id)
        return "unknown_payment"
    if report.status == "pending":
        return "pending"
    moved = await settle(session, payment, report.status, reason=report.reason)
    return report.status if moved else "duplicate"


# --- the poller ----------------------------------------------------------------------------------

async def poll_due(db: Database, *, gateway: Gateway, now: datetime | None = None, limit: int = 100) -> int:
    """Ask the provider about every pending payment whose poll is due (exponential backoff
    from ``payment_poll_after_seconds`` up to ``payment_poll_max_interval_seconds``), and
    expire those past ``expires_at`` after closing their checkout at the provider. Returns
    how many payments it looked at. Safe to run twice at once (guarded updates)."""
    now = now or utcnow()
    async with db.read_session() as session:
        due = list(await repository.due_for_poll(session, now=now, limit=limit))
        rules = await policies.current(session)
    for payment in due:
        try:
            await _poll_one(db, gateway, payment, now=now, base=rules.payment_poll_after_seconds)
        except Exception:  # one provider failure must not stop the others
            log.exception("payments: poll failed", payment_id=str(payment.id))
    return len(due)


async def _poll_one(db: Database, gateway: Gateway, payment: Payment, *, now: datetime, base: float) -> None:
    try:
        adapter: PaymentProvider | None = gateway.provider(payment.provider)
    except UnknownProvider:
        adapter = None  # the provider was switched off: nobody left to ask
    answer = None
    if adapter is not None and payment.provider_ref:
        try:
            # Outside a write transaction: a real provider answers over the network.
            async with db.read_session() as session:
                answer = await adapter.status(session, provider_ref=payment.provider_ref)
        except ProviderError as exc:
            log.warning("payments: provider did not answer", payment_id=str(payment.id), error=str(exc))
    async with db.transaction() as session:
        current = await repository.get(session, payment.id)
        if current is None or current.status not in OPEN:
            return
        if answer is not None and answer.status in FINAL_REPORTS:
            await settle(session, current, answer.status, reason=answer.reason)
            return
        if current.expires_at <= now:
            ended = None
            if adapter is not None and current.provider_ref:
                # Close the checkout first: once the provider confirms it can no longer be paid,
                # expiring here can never strand money taken a moment later.
                try:
                    ended = await adapter.cancel(session, provider_ref=current.provider_ref)
                except ProviderError as exc:
                    log.warning("payments: provider did not close the checkout", payment_id=str(current.id),
                                error=str(exc))
                    ended = None
                    if adapter.name != "sandbox":
                        await _back_off(session, current, now=now, base=base, settings=gateway.settings)
                        return
            if ended is not None and ended.status in FINAL_REPORTS and ended.status != "expired":
                await settle(session, current, ended.status, reason=ended.reason)
            else:
                await settle(session, current, "expired", reason="not confirmed before it expired")
            return
        await _back_off(session, current, now=now, base=base, settings=gateway.settings)


async def _back_off(session: AsyncSession, payment: Payment, *, now: datetime, base: float,
                    settings: Settings) -> None:
    delay = min(max(base, 1.0) * 2 ** min(payment.poll_attempts, 30), settings.payment_poll_max_interval_seconds)
    next_at = min(now + timedelta(seconds=delay), max(payment.expires_at, now))
    await repository.schedule_poll(session, payment.id, attempts_before=payment.poll_attempts,
                                   next_poll_at=next_at, now=now)


# --- giving money back ---------------------------------------------------------------------------

async def refund(session: AsyncSession, *, payment_id: uuid.UUID, amount: int, reason: str,
                 gateway: Gateway) -> Payment:
    """Give ``amount`` of a succeeded payment back through its provider: the payer's wallet
    pays it to ``provider_clearing:<provider>`` (ledger reference
    ``payment-refund:<payment id>:<refunded amount before>``), the payment becomes
    ``partially_refunded`` or ``refunded``, and ``payment.refunded`` is published.
    Raises InsufficientFunds when the wallet no longer holds the money (nothing changes)."""
    payment = found_or_raise(await repository.get(session, payment_id),
                             PaymentNotFound, f"There is no payment {payment_id}.")
    if payment.status not in REFUNDABLE:
        raise PaymentNotRefundable(f"Payment {payment_id} is {payment.status}; only a succeeded payment is refunded.")
    left = payment.amount - payment.refunded_amount
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0 or amount > left:
        raise RefundTooLarge(f"Refund between 1 and {left} (minor units) of payment {payment_id}.")
    adapter = gateway.provider(payment.provider)
    before = payment.refunded_amount
    reference = f"payment-refund:{payment.id}:{before}"
    now = utcnow()
    try:
        async with session.begin_nested():
            moved = await repository.add_refund(session, payment.id, amount=amount, before=before,
                                                refundable=REFUNDABLE, now=now)
            if moved is None:
                raise PaymentChangedConcurrently(f"Payment {payment_id} was refunded meanwhile; read it and retry.")
            await ledger.post(session, kind="payment_refund", reference=reference, currency=payment.currency,
                              legs=transfer(accounts.user_wallet(payment.user_id),
                                            accounts.provider_clearing(payment.provider), amount),
                              memo=f"Payment refunded: {reason}"[:500], user_id=payment.user_id,
                              payment_id=payment.id, order_id=payment.order_id)
    except (InsufficientFunds, PaymentChangedConcurrently):
        await refresh_if_held(session, Payment, payment.id)
        raise
    # Last, so a refusal above never reaches the provider; a provider failure here raises and
    # the caller's transaction undoes the ledger posting and the state change.
    assert payment.provider_ref is not None
    await adapter.refund(session, provider_ref=payment.provider_ref, amount=amount, idempotency_key=reference)
    await _announce(session, moved, "payment.refunded", refund_amount=amount, refunded_amount=moved.refunded_amount,
                    reason=reason)
    await audit(session, actor_id=None, actor_email=None, action=AuditAction.payment_refund, resource_type="payment",
                resource_id=payment.id, before={"status": "succeeded" if before == 0 else "partially_refunded",
                                                "refunded_amount": before},
                after={"status": moved.status, "refunded_amount": moved.refunded_amount, "reason": reason})
    return moved


async def get_visible(session: AsyncSession, payment_id: uuid.UUID, *, user_id: uuid.UUID, any_user: bool) -> Payment:
    return found_or_raise(await repository.visible_to(session, payment_id, user_id=user_id, any_user=any_user),
                          PaymentNotFound, f"There is no payment {payment_id}.")


async def list_own(session: AsyncSession, user_id: uuid.UUID, *, after: tuple[datetime, uuid.UUID] | None,
                   limit: int) -> list[Payment]:
    return list(await repository.of_user(session, user_id, after=after, limit=limit))


async def counts_since(session: AsyncSession, since: datetime) -> dict[str, int]:
    """Payments started since ``since`` by status (the admin health page)."""
    return await repository.counts_since(session, since)
