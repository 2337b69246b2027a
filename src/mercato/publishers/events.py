"""The events the publishers module emits (their ``data``; see ``mercato.bus.events``)."""

from __future__ import annotations

import uuid

from mercato.bus.events import EventData, event_type


@event_type("publisher.application_submitted", source="publishers")
class ApplicationSubmitted(EventData):
    """A user applied to become a publisher."""
    application_id: uuid.UUID
    user_id: uuid.UUID
    slug: str


@event_type("publisher.application_approved", source="publishers")
class ApplicationApproved(EventData):
    """An admin approved an application: the publisher exists, the applicant owns it."""
    application_id: uuid.UUID
    user_id: uuid.UUID
    publisher_id: uuid.UUID
    slug: str


@event_type("publisher.application_rejected", source="publishers")
class ApplicationRejected(EventData):
    """An admin rejected an application."""
    application_id: uuid.UUID
    user_id: uuid.UUID
    reason: str


@event_type("publisher.created", source="publishers")
class PublisherCreated(EventData):
    """A publisher was created with its first owner."""
    publisher_id: uuid.UUID
    slug: str
    owner_id: uuid.UUID


@event_type("publisher.updated", source="publishers")
class PublisherUpdated(EventData):
    """The publisher's profile or verified badge changed (the fields that changed)."""
    publisher_id: uuid.UUID
    slug: str
    changed: list[str]


@event_type("publisher.member_added", source="publishers")
class MemberAdded(EventData):
    """A member joined the publisher, or a member's role changed (owner or member)."""
    publisher_id: uuid.UUID
    user_id: uuid.UUID
    role: str


@event_type("publisher.member_removed", source="publishers")
class MemberRemoved(EventData):
    """A member left the publisher."""
    publisher_id: uuid.UUID
    user_id: uuid.UUID
