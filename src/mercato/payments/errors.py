"""Typed payment problems (RFC 9457 with a ``code``)."""

from __future__ import annotations

from mercato.kit.errors import BadRequest, Conflict, InvalidTransition, NotFound, ValidationFailed


class PaymentNotFound(NotFound):
    code, title = "payment_not_found", "No such payment"


class UnknownProvider(NotFound):
    code, title = "unknown_provider", "No such payment provider"


class ProviderNotConfigured(Conflict):
    """The configured provider cannot take payments (Stripe without its keys, sandbox off)."""

    status = 503
    code, title = "payment_provider_unavailable", "The payment provider is not available"


class ProviderError(Conflict):
    """The provider refused or failed a request (network, API error)."""

    status = 502
    code, title = "payment_provider_error", "The payment provider failed"


class InvalidSignature(BadRequest):
    code, title = "invalid_signature", "The webhook signature does not verify"


class StaleWebhook(BadRequest):
    code, title = "stale_webhook", "The webhook is too old (or from the future)"


class MalformedWebhook(BadRequest):
    code, title = "malformed_webhook", "The webhook body is not a report this provider sends"


class PaymentNotRefundable(InvalidTransition):
    """Only a succeeded (or partially refunded) payment gives money back."""


class RefundTooLarge(ValidationFailed):
    code, title = "refund_exceeds_payment", "The refund is larger than what is left of the payment"


class PaymentChangedConcurrently(Conflict):
    """Another transaction refunded the same payment at the same moment; retry."""

    code, title = "payment_changed", "The payment changed meanwhile; try again"
