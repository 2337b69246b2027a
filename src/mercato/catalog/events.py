"""The events the catalog module emits (their ``data``; see ``mercato.bus.events``)."""

from __future__ import annotations

import uuid
from typing import Literal

from mercato.bus.events import EventData, event_type


@event_type("category.changed", source="catalog")
class CategoryChanged(EventData):
    """A category was created, updated or deleted."""
    category_id: uuid.UUID
    slug: str
    change: Literal["created", "updated", "deleted"]


class ListingEvent(EventData):
    listing_id: uuid.UUID
    publisher_id: uuid.UUID
    slug: str


@event_type("listing.created", source="catalog")
class ListingCreated(ListingEvent):
    """A publisher created a listing (a draft)."""
    kind: str


@event_type("listing.updated", source="catalog")
class ListingUpdated(ListingEvent):
    """The listing's metadata changed (the fields that changed)."""
    changed: list[str]


@event_type("listing.submitted", source="catalog")
class ListingSubmitted(ListingEvent):
    """A new listing went into review with its first version."""
    version: str


@event_type("listing.published", source="catalog")
class ListingPublished(ListingEvent):
    """The listing is public: its first version was approved."""


@event_type("listing.rejected", source="catalog")
class ListingRejected(ListingEvent):
    """A new listing's review was rejected."""
    reason: str


@event_type("listing.changes_requested", source="catalog")
class ListingChangesRequested(ListingEvent):
    """A reviewer asked for changes before the listing can be published."""
    reason: str


@event_type("listing.delisted", source="catalog")
class ListingDelisted(ListingEvent):
    """The publisher took the listing out of the store (owners keep it)."""


@event_type("listing.relisted", source="catalog")
class ListingRelisted(ListingEvent):
    """The publisher put a delisted listing back."""


@event_type("listing.suspended", source="catalog")
class ListingSuspended(ListingEvent):
    """An admin suspended the listing."""
    reason: str


@event_type("listing.unsuspended", source="catalog")
class ListingUnsuspended(ListingEvent):
    """An admin lifted a suspension; the listing is in ``status`` again."""
    status: str


LISTING_TYPES = ("listing.created", "listing.updated", "listing.submitted", "listing.published",
                 "listing.rejected", "listing.changes_requested", "listing.delisted", "listing.relisted",
                 "listing.suspended", "listing.unsuspended")
