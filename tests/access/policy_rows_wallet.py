"""Policy rows (A1) of the wallet routes."""

from __future__ import annotations

V1 = "/api/v1"

POLICY_ROWS: dict[tuple[str, str], str] = {
    ("GET", f"{V1}/wallet"): "wallet:read",
    ("GET", f"{V1}/wallet/transactions"): "wallet:read",
}
