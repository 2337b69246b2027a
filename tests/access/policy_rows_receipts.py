"""Policy rows (A1) of the receipt routes."""

from __future__ import annotations

V1 = "/api/v1"

POLICY_ROWS: dict[tuple[str, str], str] = {
    ("GET", f"{V1}/orders/{{order_id}}/receipt"): "order:read",
    ("GET", f"{V1}/payments/{{payment_id}}/receipt"): "payment:read",
}
