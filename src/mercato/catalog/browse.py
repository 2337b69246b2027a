"""Browsing and searching published listings, as ``GET /listings`` answers (the API and
the storefront): the search port (``catalog.search``) finds the ids, the listings are read
and presented here. Callers hand in the store's search adapter (``Runtime.search``): it
keeps the answers it computed for the life of the runtime."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.catalog import presenter, repository
from mercato.catalog.categories import categories
from mercato.catalog.schemas import ListingPage
from mercato.catalog.search.query import ListingSearch, SearchQuery
from mercato.models import Category, Listing
from mercato.publishers import service as publishers
from mercato.publishers.errors import PublisherNotFound


async def search_listings(session: AsyncSession, *, search: ListingSearch, q: str | None = None,
                          kind: str | None = None, category: str | None = None, price: str | None = None,
                          delivery: str | None = None, platform: str | None = None, publisher: str | None = None,
                          sort: str = "relevance",
                          cursor: str | None = None, limit: int = 20, facets: bool = True,
                          known: list[Category] | None = None) -> ListingPage:
    """Published listings as ``GET /listings`` answers them (the API and the storefront): full
    text, filters, sorts and facet counts (``facets.category`` keyed by category slug). An unknown
    category or publisher matches nothing. Arguments are validated by the caller's query types;
    ``known``: the categories, when the caller has read them already (a page that searches more
    than once reads them once)."""
    known = known if known is not None else await categories(session)
    category_id = next((c.id for c in known if c.slug == category), None) if category else None
    publisher_id = None
    if publisher is not None:
        try:
            publisher_id = (await publishers.get(session, publisher)).id
        except PublisherNotFound:
            publisher_id = uuid.UUID(int=0)
    if category is not None and category_id is None:
        category_id = uuid.UUID(int=0)
    result = await search.search(session, SearchQuery(
        q=q.strip() or None if q else None, kind=kind, category_id=category_id, price=price,  # type: ignore[arg-type]
        delivery=delivery, platform=platform, publisher_id=publisher_id, sort=sort,  # type: ignore[arg-type]
        cursor=cursor, limit=limit, facets=facets))
    found = {listing.id: listing for listing in await visible_batch_by_ids(session, result.ids)}
    items = await presenter.present(session, [found[i] for i in result.ids if i in found], categories=known)
    slugs = {str(c.id): c.slug for c in known}
    out_facets = dict(result.facets)
    if "category" in out_facets:
        out_facets["category"] = {slugs.get(key, key): n for key, n in out_facets["category"].items()}
    return ListingPage(items=items, next_cursor=result.next_cursor, total=result.total, facets=out_facets)


async def facet_counts(session: AsyncSession, *, search: ListingSearch, categories: list[Category],
                       q: str | None = None, kind: str | None = None, category: str | None = None,
                       price: str | None = None, delivery: str | None = None,
                       platform: str | None = None) -> dict[str, dict[str, int]]:
    """Only the facet counts ``GET /listings`` would answer for these filters (category keyed by
    slug), without reading, hydrating and presenting a page of listings: the storefront's
    count of a chosen filter's alternatives (one per active filter) needs nothing else."""
    category_id = next((c.id for c in categories if c.slug == category), uuid.UUID(int=0)) if category else None
    result = await search.search(session, SearchQuery(
        q=q.strip() or None if q else None, kind=kind, category_id=category_id, price=price,  # type: ignore[arg-type]
        delivery=delivery, platform=platform, sort="popular", limit=1, facets=True,  # type: ignore[arg-type]
        items=False))
    out = dict(result.facets)
    if "category" in out:
        slugs = {str(c.id): c.slug for c in categories}
        out["category"] = {slugs.get(key, key): n for key, n in out["category"].items()}
    return out


async def visible_batch_by_ids(session: AsyncSession, ids: Sequence[uuid.UUID]) -> list[Listing]:
    """Published listings by id (search results are published ones)."""
    return await repository.by_ids(session, ids, condition=None, publisher_ids=())
