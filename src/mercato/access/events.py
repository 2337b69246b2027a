"""The events the access module emits (their ``data``; see ``mercato.bus.events``)."""

from __future__ import annotations

import uuid

from mercato.bus.events import EventData, event_type


@event_type("role.changed", source="access")
class RoleChanged(EventData):
    """A role was created or its permissions replaced (permission -> condition any|own|public)."""
    role: str
    permissions: dict[str, str]


@event_type("user.roles_changed", source="access")
class UserRolesChanged(EventData):
    """The account's roles, as they are now."""
    user_id: uuid.UUID
    roles: list[str]
