"""Policy rows (A1) of the key pool and licence routes (M12, L1)."""

from __future__ import annotations

V1 = "/api/v1"

POLICY_ROWS: dict[tuple[str, str], str] = {
    ("POST", f"{V1}/listings/{{listing_id}}/keys"): "licence_key:manage",
    ("GET", f"{V1}/listings/{{listing_id}}/keys"): "licence_key:manage",
    ("GET", f"{V1}/library/{{listing_id}}/license"): "library:read",
}
