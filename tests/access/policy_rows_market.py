"""Policy rows (A1) of the market routes: admins manage sources; mirrored listings are public."""

from __future__ import annotations

V1 = "/api/v1"
PUBLIC = "public"
MANAGE = "market_source:manage"

POLICY_ROWS: dict[tuple[str, str], str] = {
    ("GET", f"{V1}/admin/sources"): MANAGE,
    ("POST", f"{V1}/admin/sources"): MANAGE,
    ("DELETE", f"{V1}/admin/sources/{{source_id}}"): MANAGE,
    ("POST", f"{V1}/admin/sources/{{source_id}}/sync"): MANAGE,
    ("GET", f"{V1}/admin/market-sources"): MANAGE,
    ("POST", f"{V1}/admin/market-sources"): MANAGE,
    ("DELETE", f"{V1}/admin/market-sources/{{source_id}}"): MANAGE,
    ("POST", f"{V1}/admin/market-sources/{{source_id}}/sync"): MANAGE,
    ("GET", f"{V1}/market/listings"): PUBLIC,
    ("GET", f"{V1}/market/listings/{{listing_id}}"): PUBLIC,
}
