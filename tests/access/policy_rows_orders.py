"""Policy rows (A1) of the order routes."""

from __future__ import annotations

V1 = "/api/v1"

POLICY_ROWS: dict[tuple[str, str], str] = {
    ("POST", f"{V1}/orders"): "order:create",
    ("GET", f"{V1}/orders"): "order:read",
    ("GET", f"{V1}/orders/{{order_id}}"): "order:read",
    ("POST", f"{V1}/orders/{{order_id}}/cancel"): "order:cancel",
    ("POST", f"{V1}/orders/{{order_id}}/pay"): "order:create",
    ("POST", f"{V1}/orders/{{order_id}}/ship"): "order:fulfil",
    ("POST", f"{V1}/orders/{{order_id}}/deliver"): "order:fulfil",
    ("GET", f"{V1}/publishers/{{slug}}/orders"): "order:fulfil",
}
