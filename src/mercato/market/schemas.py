"""Request and response models of market sources and mirrored listings, and the schema a
source's sync feed answer must match (validated before anything is applied)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mercato.kit.markdown import render_markdown
from mercato.kit.schemas import ReadModel, WriteModel
from mercato.kit.ssrf import MAX_URL_LENGTH
from mercato.models import MarketSource, MirroredListing

Health = Literal["never", "ok", "failing"]
# The slug of a listing, here as on the source store (mercato.kit.schemas.Slug).
SLUG_PATTERN = r"^[a-z0-9-]{2,64}$"


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
                   source_link=f"{source.url}/listings/{quote(row.slug, safe='')}", listing=row.data,
                   updated_at=row.updated_at)


# --- what a source's feed must answer (mercato.sync.schemas.CatalogSyncPage) ------------------------

def _web_url(value: Any) -> str | None:
    """``value`` if it is an http(s) URL with a host (what a local listing accepts), else None."""
    if not isinstance(value, str) or len(value) > MAX_URL_LENGTH or any(c in value for c in "\x00\r\n\t <>\"'`"):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    return value if parts.scheme.lower() in ("http", "https") and parts.hostname else None


class RemoteListing(BaseModel):
    """The part of a remote listing the mirror relies on; the rest is kept as it came, but as
    untrusted input: the slug is a local slug, URLs are http(s) or dropped, and the HTML of the
    description is rendered here from its Markdown (the source's own HTML is never kept)."""

    model_config = ConfigDict(extra="allow")

    id: uuid.UUID
    slug: str = Field(pattern=SLUG_PATTERN)
    name: str = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _sanitize(self) -> RemoteListing:
        extra = self.__pydantic_extra__ if self.__pydantic_extra__ is not None else {}
        for key in ("homepage", "icon_url"):
            if key in extra:
                extra[key] = _web_url(extra[key])
        if "screenshots" in extra:
            shots = extra["screenshots"] if isinstance(extra["screenshots"], list) else []
            extra["screenshots"] = [url for url in (_web_url(s) for s in shots[:12]) if url]
        description = extra.get("description")
        extra["description_html"] = render_markdown(description) if isinstance(description, str) else ""
        return self


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
