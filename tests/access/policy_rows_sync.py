"""Policy rows (A1) of the sync routes: the catalog feed is as public as the catalog."""

from __future__ import annotations

V1 = "/api/v1"
PUBLIC = "public"

POLICY_ROWS: dict[tuple[str, str], str] = {
    ("GET", f"{V1}/sync/catalog"): PUBLIC,
    ("POST", f"{V1}/sync/catalog/diff"): PUBLIC,
    ("GET", f"{V1}/sync/me"): "sync:read",
}
