"""Audit actions, named ``resource:action`` like permissions."""

from enum import StrEnum


class AuditAction(StrEnum):
    authorization_denied = "authorization:denied"
    user_create = "user:create"
    user_update = "user:update"
    user_roles_change = "user:roles_change"
    user_disable = "user:disable"
    user_enable = "user:enable"
    role_update = "role:update"
    token_create = "token:create"
    token_revoke = "token:revoke"
    password_change = "password:change"
    email_change = "email:change"
    refresh_reuse = "refresh_token:reuse_detected"
    publisher_application_create = "publisher_application:create"
    publisher_application_approve = "publisher_application:approve"
    publisher_application_reject = "publisher_application:reject"
    publisher_create = "publisher:create"
    publisher_update = "publisher:update"
    publisher_verify = "publisher:verify"
    publisher_member_add = "publisher_member:add"
    publisher_member_remove = "publisher_member:remove"
