"""Catalog: categories, browsing and search, batch, and listing changes (a listing's detail,
``GET /listings/{id}``, is the read model's: mercato/listing_detail/endpoints.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from mercato.access.dependencies import OptionalPrincipal, idempotent, public, requires
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.catalog import presenter, service
from mercato.catalog.errors import (
    CategoryInUse,
    CategoryNotFound,
    CategorySlugTaken,
    InvalidOffer,
    ListingNotFound,
    ListingSlugTaken,
    ListingTransitionRefused,
    UnknownCategory,
)
from mercato.catalog.schemas import (
    BatchRequest,
    BatchResponse,
    CategoryCreate,
    CategoryRead,
    CategoryUpdate,
    ListingCreate,
    ListingKey,
    ListingPage,
    ListingRead,
    ListingUpdate,
    Reason,
)
from mercato.kit.errors import Forbidden
from mercato.kit.pagination import CursorParam, Limit, decode_cursor, keyset_page, page_of
from mercato.kit.schemas import Page, Slug
from mercato.platform.routing import ReadSession, RuntimeDep, TransactionalRoute, WriteSession
from mercato.publishers import service as publishers
from mercato.publishers.errors import PublisherNotFound

router = APIRouter(route_class=TransactionalRoute, tags=["catalog"])


# --- categories ---------------------------------------------------------------------------------

@router.get("/categories", response_model=Page[CategoryRead], dependencies=[public()])
async def list_categories(session: ReadSession, cursor: CursorParam = None, limit: Limit = 100) -> Page[CategoryRead]:
    """The categories in their display order (100 a page by default)."""
    page, next_cursor = page_of(await service.categories(session), key=lambda c: (c.position, c.name, c.slug),
                                cursor=cursor, limit=limit)
    return Page(items=[CategoryRead.model_validate(c) for c in page], next_cursor=next_cursor)


@router.post("/admin/categories", status_code=201, response_model=CategoryRead,
             responses=CategorySlugTaken.responses())
async def create_category(body: CategoryCreate, session: WriteSession,
                          actor: Annotated[Principal, requires(Permission.category_manage)]) -> CategoryRead:
    return CategoryRead.model_validate(
        await service.create_category(session, actor=actor, fields=body.model_dump()))


@router.patch("/admin/categories/{slug}", response_model=CategoryRead, responses=CategoryNotFound.responses())
async def update_category(slug: Slug, body: CategoryUpdate, session: WriteSession,
                          actor: Annotated[Principal, requires(Permission.category_manage)]) -> CategoryRead:
    return CategoryRead.model_validate(await service.update_category(
        session, actor=actor, slug=slug, changes=body.model_dump(exclude_unset=True)))


@router.delete("/admin/categories/{slug}", status_code=204, responses=CategoryNotFound.responses(CategoryInUse))
async def delete_category(slug: Slug, session: WriteSession,
                          actor: Annotated[Principal, requires(Permission.category_manage)]) -> Response:
    await service.delete_category(session, actor=actor, slug=slug)
    return Response(status_code=204)


# --- browse and search --------------------------------------------------------------------------

@router.get("/listings", response_model=ListingPage, dependencies=[public()])
async def search_listings(
        session: ReadSession, rt: RuntimeDep,
        q: Annotated[str | None, Query(max_length=200, description="Full-text query.")] = None,
        kind: Literal["app", "plugin", "game"] | None = None,
        category: Slug | None = None,
        price: Literal["free", "paid"] | None = None,
        delivery: Literal["digital", "physical"] | None = None,
        platform: Annotated[str | None, Query(pattern=r"^[a-z0-9-]{2,32}$")] = None,
        publisher: Slug | None = None,
        sort: Literal["relevance", "popular", "rating", "newest", "price"] = "relevance",
        cursor: CursorParam = None, limit: Limit = 20,
        facets: Annotated[bool, Query(description="Include facet counts.")] = True) -> ListingPage:
    """Published listings: full text over name, summary, description, tags and publisher, with
    filters, sorts and facet counts (`facets.category` is keyed by category slug). An unknown
    category or publisher simply matches nothing."""
    return await service.search_listings(session, search=rt.search, q=q, kind=kind, category=category,
                                         price=price, delivery=delivery, platform=platform, publisher=publisher,
                                         sort=sort, cursor=cursor, limit=limit, facets=facets)


@router.post("/listings/batch", response_model=BatchResponse, dependencies=[public()])
async def batch(body: BatchRequest, session: ReadSession, viewer: OptionalPrincipal) -> BatchResponse:
    """Up to 100 listings by id or by slug in one call (clients refreshing their caches)."""
    found, missing = await service.visible_batch(session, viewer, ids=body.ids, slugs=body.slugs)
    return BatchResponse(items=await presenter.present(session, found), missing=missing)


# --- listing changes ----------------------------------------------------------------------------

@router.post("/listings", status_code=201, response_model=ListingRead,
             responses=ListingSlugTaken.responses(PublisherNotFound, UnknownCategory, InvalidOffer, Forbidden))
async def create_listing(body: ListingCreate, session: WriteSession, rt: RuntimeDep,
                         actor: Annotated[Principal, requires(Permission.listing_create)],
                         _key: Annotated[str | None, idempotent(required=False)]) -> ListingRead:
    """A draft listing of one of your publishers. It becomes public once its first version is
    approved. Accepts an `Idempotency-Key`."""
    fields = body.model_dump(mode="json")
    listing = await service.create(session, actor=actor, fields=fields, currency=rt.settings.currency)
    (out,) = await presenter.present(session, [listing])
    return out


@router.patch("/listings/{listing_id}", response_model=ListingRead,
              responses=ListingNotFound.responses(UnknownCategory, InvalidOffer, Forbidden, ListingTransitionRefused))
async def update_listing(listing_id: ListingKey, body: ListingUpdate, session: WriteSession, rt: RuntimeDep,
                         actor: Annotated[Principal, requires(Permission.listing_update)]) -> ListingRead:
    """Edit metadata and offers; changes show at once (also on a published listing). The slug
    cannot change: it is the package name."""
    changes = body.model_dump(mode="json", exclude_unset=True)
    listing = await service.update(session, actor=actor, key=listing_id, changes=changes,
                                   currency=rt.settings.currency)
    (out,) = await presenter.present(session, [listing])
    return out


@router.post("/listings/{listing_id}/delist", response_model=ListingRead,
             responses=ListingNotFound.responses(ListingTransitionRefused, Forbidden))
async def delist(listing_id: ListingKey, session: WriteSession,
                 actor: Annotated[Principal, requires(Permission.listing_delist)]) -> ListingRead:
    """Take a published listing off the shelf; owners keep what they have. Relist to undo."""
    (out,) = await presenter.present(session, [await service.delist(session, actor=actor, key=listing_id)])
    return out


@router.post("/listings/{listing_id}/relist", response_model=ListingRead,
             responses=ListingNotFound.responses(ListingTransitionRefused, Forbidden))
async def relist(listing_id: ListingKey, session: WriteSession,
                 actor: Annotated[Principal, requires(Permission.listing_delist)]) -> ListingRead:
    (out,) = await presenter.present(session, [await service.relist(session, actor=actor, key=listing_id)])
    return out


@router.post("/admin/listings/{listing_id}/suspend", response_model=ListingRead,
             responses=ListingNotFound.responses(ListingTransitionRefused))
async def suspend(listing_id: ListingKey, body: Reason, session: WriteSession,
                  actor: Annotated[Principal, requires(Permission.listing_suspend)]) -> ListingRead:
    """Admins hide a listing from everyone but its publisher, from any state; unsuspend returns
    it to the state it had."""
    listing = await service.suspend(session, actor=actor, key=listing_id, reason=body.reason)
    (out,) = await presenter.present(session, [listing])
    return out


@router.post("/admin/listings/{listing_id}/unsuspend", response_model=ListingRead,
             responses=ListingNotFound.responses(ListingTransitionRefused))
async def unsuspend(listing_id: ListingKey, session: WriteSession,
                    actor: Annotated[Principal, requires(Permission.listing_suspend)]) -> ListingRead:
    (out,) = await presenter.present(session, [await service.unsuspend(session, actor=actor, key=listing_id)])
    return out


@router.get("/publishers/{slug}/listings", response_model=Page[ListingRead], dependencies=[public()],
            responses=PublisherNotFound.responses())
async def publisher_listings(slug: Slug, session: ReadSession, viewer: OptionalPrincipal,
                             cursor: CursorParam = None, limit: Limit = 20) -> Page[ListingRead]:
    """A publisher's listings, newest first: the public sees published ones, members all."""
    publisher = await publishers.get(session, slug)
    rows = await service.of_publisher(session, viewer, publisher, after=decode_cursor(cursor), limit=limit + 1)
    page, next_cursor = keyset_page(rows, limit)
    return Page[ListingRead](items=await presenter.present(session, page), next_cursor=next_cursor)


