"""Request and response models of the catalog: categories and listings."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import Path
from pydantic import AfterValidator, Field, HttpUrl, StringConstraints, TypeAdapter, model_validator

from mercato.kit.money import Money
from mercato.kit.schemas import ReadModel, Slug, WriteModel

# A listing in a path (``/listings/{listing_id}/…``), here so every module's routes take it alike.
ListingKey = Annotated[str, Path(pattern=r"^[A-Za-z0-9-]{2,64}$", description="The listing's id or slug.")]

Kind = Literal["app", "plugin", "game"]
ListingStatus = Literal["draft", "in_review", "published", "rejected", "changes_requested", "delisted", "suspended"]
Tag = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]

# The store's own generated artwork (web/artwork.py), named by path so it works whatever
# address the store is reached at; anything else must be an absolute http(s) URL.
STORE_ARTWORK = re.compile(r"^/(icons/[a-z0-9-]{2,64}|screenshots/[a-z0-9-]{2,64}/[1-9])\.svg$")
_http_url = TypeAdapter(HttpUrl)


def _image_url(value: str) -> str:
    if STORE_ARTWORK.match(value):
        return value
    try:
        return str(_http_url.validate_python(value))
    except ValueError:
        raise ValueError("an http(s) URL, or the path of one of the store's generated images") from None


ImageUrl = Annotated[str, StringConstraints(max_length=2083), AfterValidator(_image_url)]


class Offer(WriteModel):
    delivery: Literal["digital", "physical"]
    price: Money
    stock: int | None = Field(default=None, ge=0, le=10**9, description="Physical copies available.")


class OfferRead(ReadModel):
    delivery: Literal["digital", "physical"]
    price: Money
    stock: int | None = None


class CategoryCreate(WriteModel):
    slug: Slug
    name: str = Field(min_length=2, max_length=100)
    description: str = Field(default="", max_length=2000)
    position: int = Field(default=0, ge=0, le=10_000)


class CategoryUpdate(WriteModel):
    name: str | None = Field(default=None, min_length=2, max_length=100)
    description: str | None = Field(default=None, max_length=2000)
    position: int | None = Field(default=None, ge=0, le=10_000)


class CategoryRead(ReadModel):
    id: uuid.UUID
    slug: str
    name: str
    description: str
    position: int


class ListingCreate(WriteModel):
    publisher: Slug = Field(description="The publisher selling it; you must be a member.")
    slug: Slug = Field(description="Also the package name in mercato.toml; cannot change later.")
    name: str = Field(min_length=2, max_length=100)
    kind: Kind
    summary: str = Field(default="", max_length=140)
    description: str = Field(default="", max_length=50_000, description="Markdown; raw HTML is shown as text.")
    category: Slug | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=20)
    homepage: HttpUrl | None = None
    license: str | None = Field(default=None, min_length=1, max_length=100)
    icon_url: ImageUrl | None = None
    screenshots: list[ImageUrl] = Field(default_factory=list, max_length=12)
    offers: list[Offer] = Field(default_factory=list, max_length=2, description=(
        "At most one digital and one physical offer; none means free digital."))


class ListingUpdate(WriteModel):
    name: str | None = Field(default=None, min_length=2, max_length=100)
    summary: str | None = Field(default=None, max_length=140)
    description: str | None = Field(default=None, max_length=50_000)
    category: Slug | None = None
    tags: list[Tag] | None = Field(default=None, max_length=20)
    homepage: HttpUrl | None = None
    license: str | None = Field(default=None, min_length=1, max_length=100)
    icon_url: ImageUrl | None = None
    screenshots: list[ImageUrl] | None = Field(default=None, max_length=12)
    offers: list[Offer] | None = Field(default=None, min_length=1, max_length=2)


class PublisherBrief(ReadModel):
    id: uuid.UUID
    slug: str
    name: str
    verified: bool


class RatingSummary(ReadModel):
    average: float
    count: int


class LatestVersion(ReadModel):
    id: uuid.UUID
    version: str


class ListingRead(ReadModel):
    id: uuid.UUID
    slug: str
    name: str
    kind: Kind
    status: ListingStatus
    publisher: PublisherBrief
    category: CategoryRead | None
    tags: list[str]
    summary: str
    description: str
    description_html: str
    homepage: str | None
    license: str | None
    icon_url: str | None
    screenshots: list[str]
    delivery: Literal["digital", "physical", "both"]
    offers: list[OfferRead]
    free: bool
    platforms: list[str]
    latest_version: LatestVersion | None
    rating: RatingSummary
    download_count: int
    install_count: int
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    revision: int


class VersionBrief(ReadModel):
    id: uuid.UUID
    version: str
    status: str
    size: int
    platforms: list[str]
    host_range: str | None
    changelog: str | None
    created_at: datetime
    decided_at: datetime | None


class ListingDetail(ListingRead):
    versions: list[VersionBrief] = Field(description="Approved versions, newest first (at most 20).")
    rating_histogram: dict[str, int] = Field(description="Visible reviews per star, '1'…'5'.")
    related: list[ListingRead] = Field(description="Other published listings of its category.")


class ListingPage(ReadModel):
    items: list[ListingRead]
    next_cursor: str | None = None
    total: int | None = None
    facets: dict[str, dict[str, int]] = Field(default_factory=dict, description=(
        "Counts of matches per kind, category (slug), price (free/paid), delivery and platform."))


class BatchRequest(WriteModel):
    ids: list[uuid.UUID] | None = Field(default=None, max_length=100)
    slugs: list[Slug] | None = Field(default=None, max_length=100)

    @model_validator(mode="after")
    def _one_of(self) -> BatchRequest:
        if (self.ids is None) == (self.slugs is None):
            raise ValueError("send either ids or slugs")
        return self


class BatchResponse(ReadModel):
    items: list[ListingRead]
    missing: list[str] = Field(description="Requested ids or slugs that are unknown or not visible to you.")


class Reason(WriteModel):
    reason: str = Field(min_length=3, max_length=2000)
