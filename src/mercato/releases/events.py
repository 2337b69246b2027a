"""The events the publishing module emits (their ``data``; see ``mercato.bus.events``)."""

from __future__ import annotations

import uuid

from mercato.bus.events import EventData, event_type


class VersionEvent(EventData):
    listing_id: uuid.UUID
    publisher_id: uuid.UUID
    slug: str
    version_id: uuid.UUID
    version: str


@event_type("version.uploaded", source="publishing")
class VersionUploaded(VersionEvent):
    """A package archive passed inspection and is stored (its digest, size and risk score)."""
    sha256: str
    size: int
    risk_score: int


@event_type("version.submitted", source="publishing")
class VersionSubmitted(VersionEvent):
    """A version went into the review queue."""


@event_type("version.approved", source="publishing")
class VersionApproved(VersionEvent):
    """A reviewer approved the version: it is published (``latest`` when it is the newest stable one)."""
    latest: bool


@event_type("version.rejected", source="publishing")
class VersionRejected(VersionEvent):
    """A reviewer rejected the version."""
    reason: str


@event_type("version.changes_requested", source="publishing")
class VersionChangesRequested(VersionEvent):
    """A reviewer asked for changes to the version."""
    reason: str


@event_type("version.yanked", source="publishing")
class VersionYanked(VersionEvent):
    """The publisher yanked the version: hidden from new installs, kept for owners."""
    reason: str | None = None


VERSION_TYPES = ("version.uploaded", "version.submitted", "version.approved", "version.rejected",
                 "version.changes_requested", "version.yanked")
