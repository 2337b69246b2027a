"""The events the review module emits (their ``data``; see ``mercato.bus.events``)."""

from __future__ import annotations

import uuid

from mercato.bus.events import EventData, event_type


class ReviewEvent(EventData):
    task_id: uuid.UUID
    listing_id: uuid.UUID
    publisher_id: uuid.UUID


@event_type("review.created", source="review")
class ReviewCreated(ReviewEvent):
    """A review task was opened for a submitted version."""
    version_id: uuid.UUID
    version: str
    priority: str


@event_type("review.claimed", source="review")
class ReviewClaimed(ReviewEvent):
    """A reviewer claimed the task."""
    reviewer_id: uuid.UUID


@event_type("review.released", source="review")
class ReviewReleased(ReviewEvent):
    """The task went back to the queue: released by its reviewer, or its claim timed out."""
    reviewer_id: uuid.UUID | None
    timed_out: bool


class ReviewDecision(ReviewEvent):
    version_id: uuid.UUID
    version: str
    reviewer_id: uuid.UUID


@event_type("review.approved", source="review")
class ReviewApproved(ReviewDecision):
    """The reviewer approved the version."""


@event_type("review.rejected", source="review")
class ReviewRejected(ReviewDecision):
    """The reviewer rejected the version."""
    reason: str


@event_type("review.changes_requested", source="review")
class ReviewChangesRequested(ReviewDecision):
    """The reviewer asked for changes."""
    reason: str


@event_type("review.appealed", source="review")
class ReviewAppealed(ReviewEvent):
    """The publisher appealed a rejection (once per task)."""
    version_id: uuid.UUID
    version: str
    reason: str


@event_type("review.appeal_upheld", source="review")
class AppealUpheld(ReviewEvent):
    """An appeal was upheld: the version is back in the queue as a new task."""
    version_id: uuid.UUID
    version: str
    new_task_id: uuid.UUID


@event_type("review.appeal_denied", source="review")
class AppealDenied(ReviewEvent):
    """An appeal was denied."""
    version_id: uuid.UUID
    version: str
    reason: str
