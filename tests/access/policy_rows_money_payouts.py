"""Policy rows (A1) of the coupon, earnings and payout routes."""

from __future__ import annotations

V1 = "/api/v1"

POLICY_ROWS: dict[tuple[str, str], str] = {
    ("GET", f"{V1}/coupons"): "coupon:manage",
    ("POST", f"{V1}/coupons"): "coupon:manage",
    ("PATCH", f"{V1}/coupons/{{coupon_id}}"): "coupon:manage",
    ("GET", f"{V1}/publishers/{{slug}}/earnings"): "earnings:read",
    ("POST", f"{V1}/publishers/{{slug}}/payouts"): "payout:request",
    ("GET", f"{V1}/admin/payouts"): "payout:decide",
    ("POST", f"{V1}/admin/payouts/{{payout_id}}/approve"): "payout:decide",
    ("POST", f"{V1}/admin/payouts/{{payout_id}}/reject"): "payout:decide",
}
