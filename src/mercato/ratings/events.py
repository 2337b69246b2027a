"""The events the ratings module emits (their ``data``; see ``mercato.bus.events``)."""

from __future__ import annotations

import uuid

from mercato.bus.events import EventData, event_type


class RatingEvent(EventData):
    review_id: uuid.UUID
    listing_id: uuid.UUID
    publisher_id: uuid.UUID
    user_id: uuid.UUID


@event_type("rating.created", source="ratings")
class RatingCreated(RatingEvent):
    """An owner rated and reviewed the listing (1-5 stars)."""
    rating: int


@event_type("rating.updated", source="ratings")
class RatingUpdated(RatingEvent):
    """The author edited the review."""
    rating: int


@event_type("rating.deleted", source="ratings")
class RatingDeleted(RatingEvent):
    """The author deleted the review."""


@event_type("rating.replied", source="ratings")
class RatingReplied(RatingEvent):
    """The publisher replied to the review (``user_id`` is the review's author)."""


@event_type("rating.hidden", source="ratings")
class RatingHidden(RatingEvent):
    """A reviewer hid the review (``hidden``), or showed it again."""
    hidden: bool
    reason: str | None = None


RATING_TYPES = ("rating.created", "rating.updated", "rating.deleted", "rating.replied", "rating.hidden")
