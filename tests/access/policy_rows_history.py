"""Policy rows (A1) of the operation history route."""

from __future__ import annotations

V1 = "/api/v1"

POLICY_ROWS: dict[tuple[str, str], str] = {
    ("GET", f"{V1}/me/history"): "history:read",
}
