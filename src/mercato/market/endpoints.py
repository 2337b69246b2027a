"""Market sources (O6): admins add other Mercato stores; their catalogs are mirrored
read-only and browsed here, each listing labelled with its source and linked to it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Response

from mercato.access.dependencies import public, requires
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.kit.pagination import CursorParam, Limit, decode_cursor, encode_cursor, keyset_page, page_of
from mercato.kit.schemas import Page
from mercato.market import service, sweep
from mercato.market.errors import (
    MarketSourceExists,
    MarketSourceNotFound,
    MirroredListingNotFound,
    UrlNotAllowed,
)
from mercato.market.schemas import (
    MarketSourceCreate,
    MarketSourceRead,
    MarketSyncRead,
    MirroredListingRead,
)
from mercato.platform.routing import (
    ReadSession,
    RuntimeDep,
    TransactionalRoute,
    WriteSession,
)

router = APIRouter(route_class=TransactionalRoute, tags=["market"])

F = TypeVar("F", bound=Callable[..., Any])

SourceManager = Annotated[Principal, requires(Permission.market_source_manage)]


def _source_routes(method: str, path: str, **kwargs: Any) -> Callable[[F], F]:
    """A source route at the contract path (API.md: `/admin/sources…`) and at the path it was
    first served under (`/admin/market-sources…`), kept as a deprecated alias."""
    def register(handler: F) -> F:
        router.add_api_route(f"/admin/sources{path}", handler, methods=[method], **kwargs)
        router.add_api_route(f"/admin/market-sources{path}", handler, methods=[method], deprecated=True,
                             operation_id=f"{handler.__name__}_market_sources_alias", **kwargs)
        return handler
    return register


@_source_routes("GET", "", response_model=Page[MarketSourceRead])
async def list_sources(_actor: SourceManager, session: ReadSession, cursor: CursorParam = None,
                       limit: Limit = 20) -> Page[MarketSourceRead]:
    """Every market source with its health, failures in a row, last error and listing count,
    oldest first."""
    rows, counts = await service.sources(session)
    page, next_cursor = page_of(rows, key=lambda s: (s.created_at.isoformat(), str(s.id)), cursor=cursor, limit=limit)
    return Page(items=[MarketSourceRead.of(source, counts.get(source.id, 0)) for source in page],
                next_cursor=next_cursor)


@_source_routes("POST", "", status_code=201, response_model=MarketSourceRead,
                responses=UrlNotAllowed.responses(MarketSourceExists))
async def create_source(body: MarketSourceCreate, actor: SourceManager, session: WriteSession,
                        runtime: RuntimeDep) -> MarketSourceRead:
    """Add another Mercato store by its base URL (http or https, passing the SSRF guard: 422
    `url_not_allowed`). Its catalog is mirrored by the next sweep, or at once with
    POST …/{id}/sync."""
    source = await service.create(session, actor=actor, settings=runtime.settings, name=body.name, url=body.url)
    return MarketSourceRead.of(source, 0)


@_source_routes("DELETE", "/{source_id}", status_code=204, responses=MarketSourceNotFound.responses())
async def delete_source(source_id: uuid.UUID, actor: SourceManager, session: WriteSession) -> Response:
    """Remove the source and every listing mirrored from it (they leave /market/listings at once)."""
    await service.delete(session, actor=actor, source_id=source_id)
    return Response(status_code=204)


@_source_routes("POST", "/{source_id}/sync", response_model=MarketSyncRead, responses=MarketSourceNotFound.responses())
async def sync_source(source_id: uuid.UUID, _actor: SourceManager, runtime: RuntimeDep) -> MarketSyncRead:
    """Sync the source now: fetch its feed from the stored cursor and apply the changes. A
    failing source answers 200 too, with `health: failing` and the error; the counts say
    what this sync changed. (The request to the other store is made outside any transaction;
    each page is applied in a transaction of its own.)"""
    result = await sweep.sync_source(runtime.db, runtime.settings, source_id)
    async with runtime.db.read_session() as session:
        source = await service.get(session, source_id)
        count = await service.listing_count(session, source_id)
    return MarketSyncRead.model_validate({**MarketSourceRead.of(source, count).model_dump(),
                                          "upserted": result.upserted, "removed": result.removed,
                                          "pages": result.pages})


@router.get("/market/listings", response_model=Page[MirroredListingRead], dependencies=[public()])
async def list_mirrored(session: ReadSession, source: uuid.UUID | None = None,
                        q: Annotated[str | None, Query(max_length=100, description=(
                            "Words in the name or slug."))] = None,
                        cursor: CursorParam = None, limit: Limit = 20) -> Page[MirroredListingRead]:
    """Listings mirrored from other Mercato stores (read-only: buy or install them on their
    source store, `source_link`), most recently changed first; `source` narrows to one."""
    rows, sources = await service.browse(session, source_id=source, q=q, after=decode_cursor(cursor),
                                         limit=limit + 1)
    page, next_cursor = keyset_page(rows, limit, lambda row: encode_cursor(row.updated_at, row.id))
    return Page[MirroredListingRead](items=[MirroredListingRead.of(row, sources[row.source_id]) for row in page],
                                     next_cursor=next_cursor)


@router.get("/market/listings/{listing_id}", response_model=MirroredListingRead, dependencies=[public()],
            responses=MirroredListingNotFound.responses())
async def get_mirrored(listing_id: uuid.UUID, session: ReadSession) -> MirroredListingRead:
    row, source = await service.mirrored_listing(session, listing_id)
    return MirroredListingRead.of(row, source)
