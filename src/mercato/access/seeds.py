"""The five system roles of PRODUCT.md and the permissions each starts with.

``seed_roles`` runs after every migration (``mercato migrate`` and start-up). It creates
missing roles and grants each permission that is new to the code to its default roles
once; after that, a super admin's edits are left alone.
"""

from __future__ import annotations

from mercato.access.permissions import Condition, Permission

P, C = Permission, Condition

USER_GRANTS: dict[Permission, Condition] = {
    P.account_read: C.own,
    P.account_update: C.own,
    P.token_manage: C.own,
    P.publisher_application_create: C.own,
    P.publisher_read: C.public,
    P.listing_read: C.public,
    P.version_download: C.public,
    P.rating_write: C.own,
    P.library_read: C.own,
    P.notification_read: C.own,
    P.history_read: C.own,
    P.sync_read: C.own,
    P.wallet_read: C.own,
    P.payment_read: C.own,
    P.payment_create: C.own,
    P.refund_request: C.own,
    P.order_create: C.own,
    P.order_read: C.own,
    P.order_cancel: C.own,
    P.instance_read: C.own,
    P.instance_manage: C.own,
    P.installation_manage: C.own,
    P.task_read: C.own,
    P.task_manage: C.own,
}

DEVELOPER_GRANTS: dict[Permission, Condition] = {
    **USER_GRANTS,
    P.publisher_update: C.own,
    P.publisher_member_manage: C.own,
    P.webhook_manage: C.own,
    P.listing_read: C.own,
    P.listing_create: C.own,
    P.listing_update: C.own,
    P.listing_submit: C.own,
    P.listing_delist: C.own,
    P.version_upload: C.own,
    P.version_submit: C.own,
    P.version_yank: C.own,
    P.version_download: C.own,
    P.review_appeal_create: C.own,
    P.rating_reply: C.own,
    P.stats_read: C.own,
    P.licence_key_manage: C.own,
    P.coupon_manage: C.own,
    P.earnings_read: C.own,
    P.payout_request: C.own,
    P.refund_decide: C.own,
    P.order_fulfil: C.own,
}

REVIEWER_GRANTS: dict[Permission, Condition] = {
    **USER_GRANTS,
    P.listing_read: C.any,
    P.version_download: C.any,
    P.review_task_read: C.any,
    P.review_task_decide: C.any,
    P.rating_hide: C.any,
}

MARKETPLACE_ADMIN_GRANTS: dict[Permission, Condition] = {
    **USER_GRANTS,
    P.publisher_application_review: C.any,
    P.user_read: C.any,
    P.user_create: C.any,
    P.user_update: C.any,
    P.role_read: C.any,
    P.publisher_create: C.any,
    P.publisher_read: C.any,
    P.publisher_update: C.any,
    P.publisher_verify: C.any,
    P.publisher_member_manage: C.any,
    P.audit_read: C.any,
    P.event_read: C.any,
    P.dead_letter_manage: C.any,
    P.webhook_manage: C.any,
    P.category_manage: C.any,
    # Admins can act for any publisher (and must hold what they may grant: roles_beyond).
    P.listing_create: C.any,
    P.listing_submit: C.any,
    P.version_upload: C.any,
    P.version_submit: C.any,
    P.review_appeal_create: C.any,
    P.rating_reply: C.any,
    P.listing_read: C.any,
    P.listing_update: C.any,
    P.listing_delist: C.any,
    P.listing_suspend: C.any,
    P.version_yank: C.any,
    P.version_download: C.any,
    P.review_task_read: C.any,
    P.review_task_decide: C.any,
    P.review_appeal_decide: C.any,
    P.rating_hide: C.any,
    P.entitlement_grant: C.any,
    P.stats_read: C.any,
    P.order_read: C.any,
    P.order_cancel: C.any,
    P.order_fulfil: C.any,
    P.licence_key_manage: C.any,
    P.settings_read: C.any,
    P.settings_write: C.any,
    P.payment_read: C.any,
    P.coupon_manage: C.any,
    P.earnings_read: C.any,
    P.payout_decide: C.any,
    P.payout_request: C.any,
    P.refund_decide: C.any,
    P.instance_read: C.any,
    P.task_read: C.any,
    P.runtime_read: C.any,
    P.market_source_manage: C.any,
}

SUPER_ADMIN_GRANTS: dict[Permission, Condition] = {permission: C.any for permission in Permission}

DEFAULT_ROLES: dict[str, tuple[str, dict[Permission, Condition]]] = {
    "user": ("Buys, installs and rates. Everyone who registers.", USER_GRANTS),
    "developer": ("Member of a publisher; uploads and sells.", DEVELOPER_GRANTS),
    "reviewer": ("Moderates submissions and user reviews.", REVIEWER_GRANTS),
    "marketplace_admin": ("Runs the store: catalog, users, refunds, settings.", MARKETPLACE_ADMIN_GRANTS),
    "super_admin": ("Everything, including roles and permissions.", SUPER_ADMIN_GRANTS),
}

# Roles only a super admin may grant or take away.
PRIVILEGED_ROLES = frozenset({"marketplace_admin", "super_admin"})
# The role every account gets when it signs up: handing it out gives nothing a sign-up does not.
SIGN_UP_ROLE = "user"
