"""Policy rows (A1) of the payment routes and the sandbox provider's pages."""

from __future__ import annotations

V1 = "/api/v1"

POLICY_ROWS: dict[tuple[str, str], str] = {
    ("POST", f"{V1}/wallet/topups"): "payment:create",
    ("GET", f"{V1}/payments"): "payment:read",
    ("GET", f"{V1}/payments/{{payment_id}}"): "payment:read",
    ("POST", f"{V1}/payments/webhooks/{{provider}}"): "public",
    ("GET", "/sandbox/pay/{payment_id}"): "public",
    ("POST", "/sandbox/pay/{payment_id}"): "public",
    ("GET", "/sandbox/api/payments/{provider_ref}"): "public",
}
