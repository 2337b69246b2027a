"""The payment provider port (ARCHITECTURE "Ports") and the gateway that holds the adapters.

A provider creates a hosted checkout for a payment, answers "what became of it?" (the
poller), gives money back, cancels a checkout that the store gave up on, and reports by
signed webhook. Two adapters: :mod:`.sandbox` (built in, offline) and :mod:`.stripe`.

The gateway is built from the settings (:mod:`.factory`), once per store: it is the runtime's
``payments`` (``Runtime.from_settings``, through the factory the composition root wires in). The service
is handed it by its callers: a request's runtime, or the runtime of the bus running a
handler or sweep. ``Runtime.close`` closes it (the sandbox's pending webhook deliveries).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.config import Settings
from mercato.payments.errors import ProviderNotConfigured, UnknownProvider

if TYPE_CHECKING:
    from mercato.models import Payment

ReportedStatus = Literal["pending", "succeeded", "failed", "canceled", "expired"]
FINAL_REPORTS = frozenset({"succeeded", "failed", "canceled", "expired"})


@dataclass(frozen=True)
class Checkout:
    """What the provider made for a new payment: its reference and the page the payer uses."""

    provider_ref: str
    checkout_url: str


@dataclass(frozen=True)
class ProviderStatus:
    status: ReportedStatus
    reason: str | None = None


@dataclass(frozen=True)
class WebhookReport:
    """One verified webhook, reduced to what the state machine needs. ``status`` None: an
    event type the store does not act on (acknowledged, nothing changes)."""

    event_id: str
    event_type: str
    provider_ref: str | None
    status: ReportedStatus | None
    reason: str | None = None
    payment_id: str | None = None  # the store's id, when the provider echoes it back


class PaymentProvider(Protocol):
    name: str

    async def create(self, session: AsyncSession, *, payment: Payment) -> Checkout: ...

    async def status(self, session: AsyncSession, *, provider_ref: str) -> ProviderStatus: ...

    async def cancel(self, session: AsyncSession, *, provider_ref: str) -> ProviderStatus:
        """Close the checkout so it can no longer be paid; the status it ended in (a payment
        that succeeded meanwhile stays succeeded)."""
        ...

    async def refund(self, session: AsyncSession, *, provider_ref: str, amount: int, idempotency_key: str) -> None: ...

    def verify_webhook(self, body: bytes, headers: Mapping[str, str], *, now: datetime) -> WebhookReport:
        """Raises InvalidSignature, StaleWebhook or MalformedWebhook."""
        ...


@dataclass
class Gateway:
    settings: Settings
    providers: dict[str, PaymentProvider] = field(default_factory=dict)

    def provider(self, name: str) -> PaymentProvider:
        found = self.providers.get(name)
        if found is None:
            raise UnknownProvider(f"There is no payment provider {name!r} in this store.")
        return found

    def default(self) -> PaymentProvider:
        name = self.settings.payment_provider
        found = self.providers.get(name)
        if found is None:
            raise ProviderNotConfigured(f"The payment provider {name!r} is not configured.")
        return found

    async def drain(self) -> None:
        """Wait for the sandbox's pending webhook deliveries (tests, shutdown)."""
        sandbox = self.providers.get("sandbox")
        if sandbox is not None:
            await sandbox.drain()  # type: ignore[attr-defined]
        await asyncio.sleep(0)

    async def close(self) -> None:
        """Stop the providers' background work (the sandbox's pending webhook deliveries) and
        release their clients."""
        for provider in self.providers.values():
            closing = getattr(provider, "close", None)
            if closing is not None:
                await closing()
