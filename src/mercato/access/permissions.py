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


class Condition(StrEnum):
    any = "any"
    own = "own"
    public = "public"


# How broad a condition is: a role holding a permission under several conditions keeps
# the broadest.
CONDITION_BREADTH = {Condition.public: 0, Condition.own: 1, Condition.any: 2}
