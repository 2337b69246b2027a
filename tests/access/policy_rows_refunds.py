"""Policy rows (A1) of the refund routes."""

from __future__ import annotations

V1 = "/api/v1"

POLICY_ROWS: dict[tuple[str, str], str] = {
    ("POST", f"{V1}/orders/{{order_id}}/refunds"): "refund:request",
    ("GET", f"{V1}/refunds"): "refund:request",
    ("GET", f"{V1}/refunds/{{refund_id}}"): "refund:request",
    ("POST", f"{V1}/refunds/{{refund_id}}/approve"): "refund:decide",
    ("POST", f"{V1}/refunds/{{refund_id}}/reject"): "refund:decide",
}
