"""The events the accounts module emits (their ``data``; see ``mercato.bus.events``)."""

from __future__ import annotations

import uuid

from mercato.bus.events import EventData, event_type


@event_type("user.registered", source="accounts")
class UserRegistered(EventData):
    """A new account signed up (or was created by an admin)."""
    user_id: uuid.UUID
    email: str


@event_type("user.updated", source="accounts")
class UserUpdated(EventData):
    """The account's profile changed (the names of the fields that changed)."""
    user_id: uuid.UUID
    changed: list[str]


@event_type("user.password_changed", source="accounts")
class UserPasswordChanged(EventData):
    """The account's password changed: every earlier token of it has ended."""
    user_id: uuid.UUID


@event_type("user.disabled", source="accounts")
class UserDisabled(EventData):
    """An admin disabled the account."""
    user_id: uuid.UUID


@event_type("user.enabled", source="accounts")
class UserEnabled(EventData):
    """An admin enabled the account again."""
    user_id: uuid.UUID
