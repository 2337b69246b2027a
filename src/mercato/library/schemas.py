"""Request and response models of libraries and entitlements."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from mercato.catalog.schemas import ListingRead
from mercato.kit.schemas import ReadModel, WriteModel
from mercato.models import Entitlement

Source = Literal["purchase", "free", "admin"]


class LibraryItem(ReadModel):
    """One thing the caller owns: the entitlement and the listing as the catalog shows it."""

    entitlement_id: uuid.UUID
    source: Source = Field(description="How it was got: bought, a free listing's first download, or an admin grant.")
    granted_at: datetime
    order_id: uuid.UUID | None
    download_count: int
    listing: ListingRead


class LibraryPage(ReadModel):
    items: list[LibraryItem]
    next_cursor: str | None = None


class EntitlementGrant(WriteModel):
    user_id: uuid.UUID
    listing_id: uuid.UUID
    reason: str | None = Field(default=None, min_length=3, max_length=2000, description="Kept in the audit log.")


class EntitlementRead(ReadModel):
    id: uuid.UUID
    user_id: uuid.UUID
    listing_id: uuid.UUID
    source: Source
    order_id: uuid.UUID | None
    granted_by: uuid.UUID | None
    granted_at: datetime
    revoked_at: datetime | None
    revoked_reason: str | None
    download_count: int
    active: bool

    @classmethod
    def from_model(cls, entitlement: Entitlement) -> EntitlementRead:
        return cls(id=entitlement.id, user_id=entitlement.user_id, listing_id=entitlement.listing_id,
                   source=entitlement.source, order_id=entitlement.order_id,  # type: ignore[arg-type]
                   granted_by=entitlement.granted_by, granted_at=entitlement.granted_at,
                   revoked_at=entitlement.revoked_at, revoked_reason=entitlement.revoked_reason,
                   download_count=entitlement.download_count, active=entitlement.revoked_at is None)
