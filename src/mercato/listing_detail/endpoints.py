"""``GET /listings/{id}``: a listing's detail, from the cache, the stored documents or rendered
(mercato/listing_detail/service.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.types import Scope

from mercato.access.dependencies import OptionalPrincipal, public
from mercato.catalog.cache_keys import DETAIL_CACHE_PREFIX
from mercato.catalog.errors import ListingNotFound
from mercato.catalog.schemas import ListingDetail, ListingKey
from mercato.kit.http import FastPath, register_fast_path
from mercato.listing_detail import service as detail
from mercato.platform.routing import TransactionalRoute, get_runtime

router = APIRouter(route_class=TransactionalRoute, tags=["catalog"])
API_PREFIX = "/api/v1"  # where app.py mounts this router (the fast path sees full paths)


def _matches(offered: str | None, etag: str) -> bool:
    if not offered:
        return False
    return offered.strip() == "*" or etag in [tag.strip().removeprefix("W/") for tag in offered.split(",")]


def _cached_response(offered: str | None, body: bytes, etag: str, *, public_copy: bool) -> Response:
    headers = {"ETag": etag, "Cache-Control": "public, no-cache" if public_copy else "private, no-cache"}
    if _matches(offered, etag):
        return Response(status_code=304, headers=headers)
    return Response(content=body, media_type="application/json", headers=headers)


# --- the cached detail, answered before routing -------------------------------------------------
# A published listing's cached detail is the same for every caller, so the request middleware
# may answer it before FastAPI routes the request (kit/http.py, FastPath). Only for paths the
# router has already sent to ``get_listing`` (so no other route could be meant), without
# credentials (``OptionalPrincipal`` refuses a bad token with 401), from the cache or else from
# the stored documents (listing_detail/service.py); anything else takes the ordinary way. A miss of
# both seen there is handed on, so the route does not look them up (and count them) again.
_ROUTED_PATHS: set[str] = set()
_MISSED = "mercato.listing_detail_missed"


def _first_header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")  # type: ignore[no-any-return]
    return None


async def _answer_from_cache(scope: Scope, headers: dict[str, str]) -> Response | None:
    path: str = scope["path"]
    if "authorization" in headers or path not in _ROUTED_PATHS:
        return None
    rt = scope["app"].state.runtime
    key = path.rsplit("/", 1)[1].lower()
    known_id = key if detail.is_uuid(key) else detail.SLUG_IDS.get(key)
    cached = await rt.cache.get(DETAIL_CACHE_PREFIX + known_id) if known_id else None
    if cached is None:
        # Not cached here: the stored documents, one indexed read (no routing, no ORM).
        found = await detail.from_documents(rt, key)
        if found is None:
            scope.setdefault("state", {})[_MISSED] = key
            return None
        await detail.keep(rt, key, found)
        return _cached_response(_first_header(scope, b"if-none-match"), found.body, found.etag, public_copy=True)
    etag, _, body = cached.partition(b"\n")
    return _cached_response(_first_header(scope, b"if-none-match"), body, etag.decode(), public_copy=True)


register_fast_path(FastPath(prefix=f"{API_PREFIX}/listings/", template=f"{API_PREFIX}/listings/{{listing_id}}",
                            answer=_answer_from_cache))


@router.get("/listings/{listing_id}", response_model=ListingDetail, dependencies=[public()],
            responses={**ListingNotFound.responses(), 304: {"description": "Not modified (If-None-Match)"}})
async def get_listing(listing_id: ListingKey, request: Request, viewer: OptionalPrincipal) -> Response:
    """A listing with its approved versions, rating histogram and related listings. Published
    listings are served from a cache that every change evicts; send `If-None-Match` with the
    `ETag` to revalidate (304)."""
    rt = get_runtime(request)  # not a dependency: a sync one would cost a hop to the thread pool
    if len(_ROUTED_PATHS) > 100_000:
        _ROUTED_PATHS.clear()
    _ROUTED_PATHS.add(request.scope["path"])
    offered = request.headers.get("if-none-match")
    key = listing_id.lower()
    if request.scope.get("state", {}).get(_MISSED) != key:  # else the request middleware has just looked
        known_id = key if detail.is_uuid(key) else detail.SLUG_IDS.get(key)
        cached = await rt.cache.get(DETAIL_CACHE_PREFIX + known_id) if known_id else None
        if cached is not None:
            etag, _, body = cached.partition(b"\n")
            return _cached_response(offered, body, etag.decode(), public_copy=True)
        found = await detail.from_documents(rt, key)
        if found is not None:
            await detail.keep(rt, key, found)
            return _cached_response(offered, found.body, found.etag, public_copy=True)
    # Rendered from the database. A published listing's detail is the same for everyone, so
    # concurrent misses share one rendering (single flight); a listing only some may see (a
    # draft to its publisher's members) is rendered for the viewer.
    try:
        found = await detail.RENDERING.run(key, lambda: detail.render(rt, None, key))
    except ListingNotFound:
        if viewer is None:
            raise
        found = await detail.render(rt, viewer, key)
    if found.public:
        await detail.keep(rt, key, found)
    return _cached_response(offered, found.body, found.etag, public_copy=found.public)
