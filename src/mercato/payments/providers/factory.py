"""Choosing the payment adapters from the settings: the gateway the runtime builds per store
(``Runtime.from_settings``, wired in by ``mercato.app.runtime``)."""

from __future__ import annotations

from mercato.config import Settings
from mercato.payments.providers import Gateway
from mercato.payments.providers.sandbox import SandboxProvider


def build_gateway(settings: Settings) -> Gateway:
    """The gateway of the providers ``settings`` enable: the sandbox (offline, built in) and Stripe."""
    gateway = Gateway(settings)
    if settings.sandbox_payments_enabled:
        gateway.providers["sandbox"] = SandboxProvider(settings, store=gateway)
    if settings.stripe_secret_key and settings.stripe_webhook_secret:
        # An optional dependency's import: the Stripe SDK takes ~0.25 s to import, paid only by
        # stores that configure Stripe (start-up time, PERF-7).
        from mercato.payments.providers.stripe import StripeProvider

        gateway.providers["stripe"] = StripeProvider(settings)
    return gateway
