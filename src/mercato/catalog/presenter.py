"""Listings as the API shows them (used by catalog, library and sync endpoints)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.catalog import repository
from mercato.catalog.schemas import (
    CategoryRead,
    LatestVersion,
    ListingRead,
    Money,
    OfferRead,
    PublisherBrief,
    RatingSummary,
)
from mercato.kit.markdown import render_markdown
from mercato.models import Category, Listing, Publisher


def offers(listing: Listing) -> list[OfferRead]:
    out = []
    if listing.digital_price is not None:
        out.append(OfferRead(delivery="digital", price=Money(amount=listing.digital_price, currency=listing.currency)))
    if listing.physical_price is not None:
        out.append(OfferRead(delivery="physical", stock=listing.stock,
                             price=Money(amount=listing.physical_price, currency=listing.currency)))
    return out


def listing_read(listing: Listing, publisher: Publisher, category: Category | None) -> ListingRead:
    return ListingRead(
        id=listing.id, slug=listing.slug, name=listing.name, kind=listing.kind,  # type: ignore[arg-type]
        status=listing.status,  # type: ignore[arg-type]
        publisher=PublisherBrief(id=publisher.id, slug=publisher.slug, name=publisher.name,
                                 verified=publisher.verified),
        category=CategoryRead.model_validate(category) if category else None, tags=listing.tags,
        summary=listing.summary, description=listing.description,
        description_html=render_markdown(listing.description), homepage=listing.homepage, license=listing.license,
        icon_url=listing.icon_url, screenshots=listing.screenshots, delivery=listing.delivery,  # type: ignore[arg-type]
        offers=offers(listing), free=listing.sort_price == 0, platforms=listing.platforms,
        latest_version=(LatestVersion(id=listing.latest_version_id, version=listing.latest_version)
                        if listing.latest_version_id and listing.latest_version else None),
        rating=RatingSummary(average=round(listing.rating_average, 2), count=listing.rating_count),
        download_count=listing.download_count, install_count=listing.install_count, created_at=listing.created_at,
        updated_at=listing.updated_at, published_at=listing.published_at, revision=listing.revision)


async def present(session: AsyncSession, listings: Sequence[Listing], *,
                  categories: Sequence[Category] | None = None) -> list[ListingRead]:
    """Many listings with their publishers and categories, in two extra queries (one when
    the caller already holds every category)."""
    owners = await repository.publishers(session, {listing.publisher_id for listing in listings})
    if categories is not None:
        by_id = {category.id: category for category in categories}
    else:
        by_id = await repository.categories_by_id(
            session, {listing.category_id for listing in listings if listing.category_id})
    return [listing_read(listing, owners[listing.publisher_id],
                         by_id.get(listing.category_id) if listing.category_id else None)
            for listing in listings]
