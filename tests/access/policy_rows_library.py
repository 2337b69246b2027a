"""Policy rows (A1) of the library, ratings, notifications and publisher stats routes."""

from __future__ import annotations

V1 = "/api/v1"
PUBLIC = "public"
REVIEW = f"{V1}/listings/{{listing_id}}/reviews"

POLICY_ROWS: dict[tuple[str, str], str] = {
    # library (L1/L2)
    ("GET", f"{V1}/library"): "library:read",
    ("GET", f"{V1}/admin/entitlements"): "entitlement:grant",
    ("POST", f"{V1}/admin/entitlements"): "entitlement:grant",
    ("DELETE", f"{V1}/admin/entitlements/{{entitlement_id}}"): "entitlement:grant",
    # ratings and reviews (C5)
    ("GET", REVIEW): PUBLIC,
    ("POST", REVIEW): "rating:write",
    ("PATCH", f"{REVIEW}/{{review_id}}"): "rating:write",
    ("DELETE", f"{REVIEW}/{{review_id}}"): "rating:write",
    ("POST", f"{REVIEW}/{{review_id}}/reply"): "rating:reply",
    ("POST", f"{REVIEW}/{{review_id}}/hide"): "rating:hide",
    # notifications (O5)
    ("GET", f"{V1}/notifications"): "notification:read",
    ("POST", f"{V1}/notifications/{{notification_id}}/read"): "notification:read",
    ("POST", f"{V1}/notifications/read-all"): "notification:read",
    # publisher dashboard (P6)
    ("GET", f"{V1}/publishers/{{slug}}/stats"): "stats:read",
}
