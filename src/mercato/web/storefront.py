"""The storefront (WEB.md, U1): home, search, categories, listing and publisher pages.

Reads only, through the catalog's own search and detail code: the search page calls the
same function as GET /api/v1/listings, the listing page renders the same detail document
as GET /api/v1/listings/{id}.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from mercato.catalog import endpoints as catalog_api
from mercato.catalog import service as catalog
from mercato.catalog.schemas import ListingPage
from mercato.kit.routing import ReadSession
from mercato.web.pages import page_router, render

router = page_router()

SHELF_SIZE = 8
SHELVES = (("new", "New and updated", {"sort": "newest"}), ("popular", "Popular", {"sort": "popular"}),
           ("top-rated", "Top rated", {"sort": "rating"}), ("free", "Free", {"price": "free", "sort": "popular"}))


async def search(session: ReadSession, *, q: str | None = None, kind: str | None = None, category: str | None = None,
                 price: str | None = None, delivery: str | None = None, platform: str | None = None,
                 publisher: str | None = None, sort: str = "relevance", cursor: str | None = None, limit: int = 20,
                 facets: bool = True) -> ListingPage:
    """GET /api/v1/listings, the same function, for pages."""
    return await catalog_api.search_listings(session, q=q, kind=kind, category=category, price=price,  # type: ignore[arg-type]
                                             delivery=delivery, platform=platform, publisher=publisher,  # type: ignore[arg-type]
                                             sort=sort, cursor=cursor, limit=limit, facets=facets)  # type: ignore[arg-type]


@router.get("/")
async def home(request: Request, session: ReadSession) -> Response:
    shelves = []
    for key, title, params in SHELVES:
        page = await search(session, limit=SHELF_SIZE, facets=False, **params)  # type: ignore[arg-type]
        if page.items:
            query = "&".join(f"{k}={v}" for k, v in params.items())
            shelves.append({"key": key, "title": title, "items": page.items, "more": f"/search?{query}"})
    return await render(request, "store/home.html", {"categories": await catalog.categories(session),
                                                     "shelves": shelves})
