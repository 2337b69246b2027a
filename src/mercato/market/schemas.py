"""Request and response models of market sources and mirrored listings, and the schema a
source's sync feed answer must match (validated before anything is applied)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mercato.kit.schemas import ReadModel, WriteModel
from mercato.kit.ssrf import MAX_URL_LENGTH
from mercato.models import MarketSource, MirroredListing

Health = Literal["never", "ok", "failing"]


class MarketSourceCreate(WriteModel):
    name: str = Field(min_length=1, max_length=100, description="How the source is labelled on its listings.")
    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH, description=(
        "The other store's base URL (http or https), e.g. `https://apps.example.org`; its feed is "
        "`{url}/api/v1/sync/catalog`. It must pass the SSRF guard."))


class MarketSourceRead(ReadModel):
    id: uuid.UUID
    name: str
    url: str
    enabled: bool
    health: Health = Field(description="never: not synced yet; ok: the last sync succeeded; failing: it failed.")
    failure_count: int = Field(description="Failed syncs in a row (0 after a success).")
    last_error: str | None
    last_synced_at: datetime | None = Field(description="The last attempt, successful or not.")
    last_success_at: datetime | None
    listing_count: int = Field(description="Listings mirrored from this source.")
    created_at: datetime

    @classmethod
    def of(cls, source: MarketSource, listing_count: int) -> MarketSourceRead:
        return cls.model_validate({**{k: getattr(source, k) for k in (
            "id", "name", "url", "enabled", "health", "failure_count", "last_error", "last_synced_at",
            "last_success_at", "created_at")}, "listing_count": listing_count})


class MarketSyncRead(MarketSourceRead):
    upserted: int = Field(description="Mirrored listings added or changed by this sync.")
    removed: int = Field(description="Mirrored listings removed by this sync.")
    pages: int = Field(description="Feed pages fetched (0 when the feed answered 304 Not Modified).")


class SourceLabel(BaseModel):
    id: uuid.UUID
    name: str
    url: str


class MirroredListingRead(BaseModel):
    id: uuid.UUID = Field(description="The mirror copy's id on this store.")
    remote_id: uuid.UUID = Field(description="The listing's id on its source store.")
    slug: str
    name: str
    source: SourceLabel = Field(description="The store this listing comes from.")
    source_link: str = Field(description="The listing on its source store: buy or install it there.")
    read_only: bool = Field(default=True, description="Always true: mirrored listings cannot be bought or "
                                                      "installed on this store.")
    listing: dict[str, Any] = Field(description="The listing as its source store publishes it.")
    updated_at: datetime

    @classmethod
    def of(cls, row: MirroredListing, source: MarketSource) -> MirroredListingRead:
        return cls(id=row.id, remote_id=row.remote_id, slug=row.slug, name=row.name,
                   source=SourceLabel(id=source.id, name=source.name, url=source.url),
                   source_link=f"{source.url}/listings/{row.slug}", listing=row.data, updated_at=row.updated_at)


# --- what a source's feed must answer (mercato.sync.schemas.CatalogSyncPage) ------------------------

class RemoteListing(BaseModel):
    """The part of a remote listing the mirror relies on; the rest is kept as it came."""

    model_config = ConfigDict(extra="allow")

    id: uuid.UUID
    slug: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=200)


class RemoteChange(BaseModel):
    id: uuid.UUID
    hash: str | None = Field(default=None, max_length=64)
    deleted: bool
    listing: RemoteListing | None = None

    @model_validator(mode="after")
    def _complete(self) -> RemoteChange:
        if not self.deleted and (self.listing is None or self.hash is None or self.listing.id != self.id):
            raise ValueError("a change that is not a tombstone carries its listing and hash")
        return self


class RemotePage(BaseModel):
    changes: list[RemoteChange]
    cursor: str = Field(min_length=1, max_length=200)
    reset: bool
    more: bool = False
