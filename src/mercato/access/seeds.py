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
}

DEVELOPER_GRANTS: dict[Permission, Condition] = {
    **USER_GRANTS,
    P.publisher_update: C.own,
    P.publisher_member_manage: C.own,
    P.webhook_manage: C.own,
}

REVIEWER_GRANTS: dict[Permission, Condition] = {**USER_GRANTS}

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
