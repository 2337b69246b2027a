"""The events the library module emits (their ``data``; see ``mercato.bus.events``)."""

from __future__ import annotations

import uuid

from mercato.bus.events import EventData, event_type


@event_type("entitlement.granted", source="library")
class EntitlementGranted(EventData):
    """The user owns the listing now (``source``: purchase, free, admin; ``order_id`` for a purchase)."""
    entitlement_id: uuid.UUID
    user_id: uuid.UUID
    listing_id: uuid.UUID
    source: str
    order_id: uuid.UUID | None = None


@event_type("entitlement.revoked", source="library")
class EntitlementRevoked(EventData):
    """The user no longer owns the listing (a refund, an admin)."""
    entitlement_id: uuid.UUID
    user_id: uuid.UUID
    listing_id: uuid.UUID
    reason: str


@event_type("entitlement.refused", source="library")
class EntitlementRefused(EventData):
    """A paid order could not be delivered (``already_owned``, ``licence_keys_exhausted``): it is refunded."""
    order_id: uuid.UUID
    user_id: uuid.UUID
    reason: str
    detail: str
    total: int | None = None
    currency: str | None = None
