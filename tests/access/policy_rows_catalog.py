"""Policy rows (A1) of the catalog, versions and review queue routes."""

from __future__ import annotations

V1 = "/api/v1"
PUBLIC = "public"
LISTING = f"{V1}/listings/{{listing_id}}"
VERSION = f"{LISTING}/versions/{{version}}"
TASK = f"{V1}/review/tasks/{{task_id}}"

POLICY_ROWS: dict[tuple[str, str], str] = {
    # categories
    ("GET", f"{V1}/categories"): PUBLIC,
    ("POST", f"{V1}/admin/categories"): "category:manage",
    ("PATCH", f"{V1}/admin/categories/{{slug}}"): "category:manage",
    ("DELETE", f"{V1}/admin/categories/{{slug}}"): "category:manage",
    # listings (C1–C4, P1, P4)
    ("GET", f"{V1}/listings"): PUBLIC,
    ("POST", f"{V1}/listings/batch"): PUBLIC,
    ("GET", LISTING): PUBLIC,
    ("POST", f"{V1}/listings"): "listing:create",
    ("PATCH", LISTING): "listing:update",
    ("POST", f"{LISTING}/submit"): "listing:submit",
    ("POST", f"{LISTING}/delist"): "listing:delist",
    ("POST", f"{LISTING}/relist"): "listing:delist",
    ("POST", f"{V1}/admin/listings/{{listing_id}}/suspend"): "listing:suspend",
    ("POST", f"{V1}/admin/listings/{{listing_id}}/unsuspend"): "listing:suspend",
    ("GET", f"{V1}/publishers/{{slug}}/listings"): PUBLIC,
    # versions (P2, P4, C6)
    ("GET", f"{LISTING}/versions"): PUBLIC,
    ("POST", f"{LISTING}/versions"): "version:upload",
    ("GET", VERSION): PUBLIC,
    ("POST", f"{VERSION}/submit"): "version:submit",
    ("POST", f"{VERSION}/yank"): "version:yank",
    ("POST", f"{VERSION}/appeal"): "review_appeal:create",
    ("GET", f"{VERSION}/download"): "version:download",
    ("GET", f"{V1}/keys"): PUBLIC,
    # review queue (P3)
    ("GET", f"{V1}/review/tasks"): "review_task:read",
    ("GET", TASK): "review_task:read",
    ("POST", f"{TASK}/claim"): "review_task:decide",
    ("POST", f"{TASK}/release"): "review_task:decide",
    ("POST", f"{TASK}/approve"): "review_task:decide",
    ("POST", f"{TASK}/reject"): "review_task:decide",
    ("POST", f"{TASK}/request-changes"): "review_task:decide",
    ("POST", f"{TASK}/appeal/uphold"): "review_appeal:decide",
    ("POST", f"{TASK}/appeal/deny"): "review_appeal:decide",
}
