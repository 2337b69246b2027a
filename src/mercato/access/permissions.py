"""Every permission in the store, as ``resource:action`` strings.

Roles (stored in the database) grant permissions with a condition:
``any`` (no restriction), ``own`` (the resource belongs to the caller or the caller's
publisher) or ``public`` (the resource is published). Row scoping for ``own`` and
``public`` happens in the repositories' "visible to" queries.
"""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    # the caller's own account
    account_read = "account:read"
    account_update = "account:update"
    token_manage = "token:manage"
    # publisher applications
    publisher_application_create = "publisher_application:create"
    publisher_application_review = "publisher_application:review"
    # user and role administration
    user_read = "user:read"
    user_create = "user:create"
    user_update = "user:update"
    role_read = "role:read"
    role_update = "role:update"
    # publishers
    publisher_create = "publisher:create"
    publisher_read = "publisher:read"
    publisher_update = "publisher:update"
    publisher_verify = "publisher:verify"
    publisher_member_manage = "publisher_member:manage"
    # operations
    audit_read = "audit:read"
    event_read = "event:read"
    dead_letter_manage = "dead_letter:manage"
    # integrations
    webhook_manage = "webhook:manage"
    # catalog
    category_manage = "category:manage"
    listing_read = "listing:read"
    listing_create = "listing:create"
    listing_update = "listing:update"
    listing_submit = "listing:submit"
    listing_delist = "listing:delist"
    listing_suspend = "listing:suspend"
    version_upload = "version:upload"
    version_submit = "version:submit"
    version_yank = "version:yank"
    version_download = "version:download"
    # review queue
    review_task_read = "review_task:read"
    review_task_decide = "review_task:decide"
    review_appeal_create = "review_appeal:create"
    review_appeal_decide = "review_appeal:decide"
    # ratings
    rating_write = "rating:write"
    rating_reply = "rating:reply"
    rating_hide = "rating:hide"
    # library and stats
    library_read = "library:read"
    entitlement_grant = "entitlement:grant"
    stats_read = "stats:read"
    notification_read = "notification:read"
    history_read = "history:read"
    sync_read = "sync:read"
    # runtime store policies (O4)
    settings_read = "settings:read"
    settings_write = "settings:write"
    # money
    wallet_read = "wallet:read"
    order_create = "order:create"
    order_read = "order:read"
    order_cancel = "order:cancel"
    order_fulfil = "order:fulfil"
    payment_read = "payment:read"
    payment_create = "payment:create"
    refund_request = "refund:request"
    refund_decide = "refund:decide"
    # coupons, earnings and payouts (M7, M8)
    coupon_manage = "coupon:manage"
    earnings_read = "earnings:read"
    payout_request = "payout:request"
    payout_decide = "payout:decide"
    # licence key pools (M12)
    licence_key_manage = "licence_key:manage"
    # installs on the user's instances (I1–I6)
    instance_read = "instance:read"
    instance_manage = "instance:manage"
    installation_manage = "installation:manage"
    task_read = "task:read"
    task_manage = "task:manage"
    # the install agent's routes: held by instance tokens only (no role grants it)
    agent_connect = "agent:connect"
    runtime_read = "runtime:read"
    # market sources (O6): other stores mirrored read-only
    market_source_manage = "market_source:manage"


class Condition(StrEnum):
    any = "any"
    own = "own"
    public = "public"


# How broad a condition is: a role holding a permission under several conditions keeps
# the broadest.
CONDITION_BREADTH = {Condition.public: 0, Condition.own: 1, Condition.any: 2}
