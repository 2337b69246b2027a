"""The events the notifications module emits (their ``data``; see ``mercato.bus.events``)."""

from __future__ import annotations

import uuid

from mercato.bus.events import EventData, event_type


@event_type("notification.created", source="notifications")
class NotificationCreated(EventData):
    """A notification reached the user's inbox (and, for the e-mailed kinds, goes out by e-mail)."""
    notification_id: uuid.UUID
    user_id: uuid.UUID
    kind: str
    title: str
