"""Policy rows (A1) of the runtime store policies routes (O4)."""

from __future__ import annotations

V1 = "/api/v1"

POLICY_ROWS: dict[tuple[str, str], str] = {
    ("GET", f"{V1}/admin/settings"): "settings:read",
    ("PATCH", f"{V1}/admin/settings"): "settings:write",
}
