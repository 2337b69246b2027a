"""Who is calling, and what they may do."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from mercato.access.permissions import CONDITION_BREADTH, Condition, Permission

# The kind of principal an instance token (``installs``) stands for; its instance is in ``extra``.
INSTANCE_KIND = "instance"


def instance_id_of(principal: Principal) -> uuid.UUID:
    return uuid.UUID(str(principal.extra["instance_id"]))


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a user, through an access token or an API token."""

    user_id: uuid.UUID
    email: str
    roles: frozenset[str]
    # The grants of the user's roles; an API token narrows them: read effective_grants() or condition_for().
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
        A scope bound to resources holds the permission for those resources only: asked about
        another resource it answers None, and asked without one (a list, a route's gate) it
        answers at most ``own``, never ``any`` — the caller then reaches what they are a member
        of, further narrowed by :meth:`bound_targets` where the code lists those publishers.
        """
        condition = self.grants.get(permission.value)
        if condition is None:
            return None
        targets = self.bound_targets(permission)
        if targets is None:
            return condition
        if not targets:  # no scope names the permission
            return None
        if resource is not None:
            return condition if resource in targets else None
        return Condition.own if condition is Condition.any else condition

    def bound_targets(self, permission: Permission) -> frozenset[str] | None:
        """The resources an API token's scopes bind ``permission`` to; None when it is not bound
        (no token, an unscoped token, or a scope naming the permission alone); empty when no
        scope names it at all."""
        if self.token_scopes is None:
            return None
        targets = set()
        for scope in self.token_scopes:
            name, _, target = scope.partition("@")
            if name != permission.value:
                continue
            if not target:
                return None
            targets.add(target)
        return frozenset(targets)

    def effective_grants(self) -> dict[str, Condition]:
        """What the caller holds across the store: the role grants, narrowed by an API token's scopes.

        Use this (never ``grants``) wherever the caller's rights are compared with something, e.g. the roles
        they may hand out. A scope bound to one resource (``listing:update@hello-notes``) holds its
        permission for that resource only, so it does not count as holding the permission here.
        """
        if self.token_scopes is None:
            return dict(self.grants)
        unbound = {scope for scope in self.token_scopes if "@" not in scope}
        return {permission: condition for permission, condition in self.grants.items() if permission in unbound}

    def has(self, permission: Permission) -> bool:
        return self.condition_for(permission) is not None

    def has_any(self, permission: Permission) -> bool:
        return self.condition_for(permission) is Condition.any


def merge_grants(rows: list[tuple[str, str]]) -> dict[str, Condition]:
    merged: dict[str, Condition] = {}
    for permission, raw in rows:
        condition = Condition(raw)
        held = merged.get(permission)
        if held is None or CONDITION_BREADTH[condition] > CONDITION_BREADTH[held]:
            merged[permission] = condition
    return merged
