"""Who is calling, and what they may do."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from mercato.access.permissions import CONDITION_BREADTH, Condition, Permission


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a user, through an access token or an API token."""

    user_id: uuid.UUID
    email: str
    roles: frozenset[str]
    grants: dict[str, Condition]
    # Set when the caller came with an API token: its scopes narrow the role grants.
    token_id: uuid.UUID | None = None
    token_scopes: tuple[str, ...] | None = None
    kind: str = "user"
    # The sign-in an access token belongs to (its refresh family); logout ends just that one.
    session_id: uuid.UUID | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def condition_for(self, permission: Permission, resource: str | None = None) -> Condition | None:
        """The broadest condition under which the caller holds ``permission``, or None.

        API token scopes are ``<permission>`` or ``<permission>@<resource>`` (for example
        ``version:upload@hello-notes``); a scope never adds to what the user's roles allow.
        """
        condition = self.grants.get(permission.value)
        if condition is None:
            return None
        if self.token_scopes is not None and not scope_allows(self.token_scopes, permission, resource):
            return None
        return condition

    def has(self, permission: Permission) -> bool:
        return self.condition_for(permission) is not None

    def has_any(self, permission: Permission) -> bool:
        return self.condition_for(permission) is Condition.any


def scope_allows(scopes: tuple[str, ...], permission: Permission, resource: str | None) -> bool:
    for scope in scopes:
        name, _, target = scope.partition("@")
        if name != permission.value:
            continue
        if not target or resource is None or target == resource:
            return True
    return False


def merge_grants(rows: list[tuple[str, str]]) -> dict[str, Condition]:
    merged: dict[str, Condition] = {}
    for permission, raw in rows:
        condition = Condition(raw)
        held = merged.get(permission)
        if held is None or CONDITION_BREADTH[condition] > CONDITION_BREADTH[held]:
            merged[permission] = condition
    return merged
