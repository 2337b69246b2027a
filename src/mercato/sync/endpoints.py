"""Incremental sync (S1, S2): the public catalog feed, diffs from held hashes, and the
caller's own state."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mercato.access.dependencies import public, requires
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.kit.http import FastPath, register_fast_path
from mercato.platform.routing import ReadSession, TransactionalRoute, get_runtime
from mercato.sync import catalog_feed, user_feed
from mercato.sync.errors import InvalidSyncCursor
from mercato.sync.schemas import (
    CatalogDiffRead,
    CatalogDiffRequest,
    CatalogSyncPage,
    UserSyncPage,
)

router = APIRouter(route_class=TransactionalRoute, tags=["sync"])
API_PREFIX = "/api/v1"  # where app.py mounts this router (the fast path sees full paths)
CATALOG_PATH = f"{API_PREFIX}/sync/catalog"

SyncCursor = Annotated[str | None, Query(max_length=2000, description=(
    "The `cursor` of the previous answer; none for a full snapshot."))]
NOT_MODIFIED = {304: {"description": "Not modified (If-None-Match)"}}


def _matches(offered: str | None, etag: str) -> bool:
    if not offered:
        return False
    return offered.strip() == "*" or etag in [tag.strip().removeprefix("W/") for tag in offered.split(",")]


def _conditional(offered: str | None, body: bytes, *, public_copy: bool) -> Response:
    etag = catalog_feed.etag(body)
    headers = {"ETag": etag, "Cache-Control": "public, no-cache" if public_copy else "private, no-cache"}
    if _matches(offered, etag):
        return Response(status_code=304, headers=headers)
    return Response(content=body, media_type="application/json", headers=headers)


# --- unchanged polls, answered before routing ---------------------------------------------------
# A client polling at the head of the feed gets the same empty answer until something changes.
# With the head position cached (evicted by every recorded change), the request middleware
# answers it without routing or the database (kit/http.py, FastPath): anonymous requests for
# exactly this path with a cursor (and at most a valid limit); anything else goes the ordinary way.

def _query(scope: Scope) -> tuple[str, str | None] | None:
    """(cursor, limit) of a plain ``cursor=…[&limit=…]`` query; None for anything else."""
    raw: bytes = scope.get("query_string", b"")
    if b"%" in raw or b"+" in raw:
        return None
    query: dict[bytes, bytes] = {}
    for part in raw.split(b"&"):
        key, _, value = part.partition(b"=")
        if key in query or key not in (b"cursor", b"limit"):
            return None
        query[key] = value
    cursor, limit = query.get(b"cursor"), query.get(b"limit")
    if not cursor or (limit is not None and not (limit.isdigit() and 1 <= int(limit) <= 5000)):
        return None
    return cursor.decode("latin-1"), limit.decode() if limit else None


class _Unchanged:
    """The prepared answers (304 and 200) for a cursor at the head of the feed."""

    def __init__(self, cursor: catalog_feed.Cursor) -> None:
        self.body = catalog_feed.unchanged_body(cursor)
        self.etag = catalog_feed.etag(self.body)
        headers = [(b"etag", self.etag.encode()), (b"cache-control", b"public, no-cache")]
        self.not_modified = {"type": "http.response.start", "status": 304, "headers": headers}
        self.ok = {"type": "http.response.start", "status": 200, "headers": [
            *headers, (b"content-type", b"application/json"), (b"content-length", str(len(self.body)).encode())]}

    def respond(self, offered: str | None) -> ASGIApp:
        modified = not _matches(offered, self.etag)

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await send(dict(self.ok if modified else self.not_modified))
            await send({"type": "http.response.body", "body": self.body if modified else b""})

        return app


# (cursor text, cached head entry) -> the prepared answer, or None when that cursor is not at the head
_PREPARED: dict[tuple[str, bytes], _Unchanged | None] = {}


def _prepared(text: str, head_entry: bytes) -> _Unchanged | None:
    key = (text, head_entry)
    if key not in _PREPARED:
        if len(_PREPARED) > 10_000:
            _PREPARED.clear()
        head, horizon = catalog_feed.parse_head_entry(head_entry)
        cursor = catalog_feed.Cursor.decode(text)
        at_head = cursor.seq == head and not catalog_feed.needs_reset(cursor, horizon=horizon, issued=head)
        _PREPARED[key] = _Unchanged(cursor) if at_head else None
    return _PREPARED[key]


async def _answer_unchanged(scope: Scope, headers: dict[str, str]) -> ASGIApp | None:
    if scope["path"] != CATALOG_PATH or "authorization" in headers:
        return None
    query = _query(scope)
    if query is None:
        return None
    cached = await scope["app"].state.runtime.cache.get(catalog_feed.HEAD_CACHE_KEY)
    if cached is None:
        return None
    prepared = _prepared(query[0], cached)
    return prepared.respond(headers.get("if-none-match")) if prepared is not None else None


register_fast_path(FastPath(prefix=CATALOG_PATH, template=CATALOG_PATH, answer=_answer_unchanged))


@router.get("/sync/catalog", response_model=CatalogSyncPage, dependencies=[public()],
            responses={**InvalidSyncCursor.responses(), **NOT_MODIFIED})
async def sync_catalog(request: Request, session: ReadSession, cursor: SyncCursor = None,
                       limit: Annotated[int | None, Query(ge=1, le=5000, description=(
                           "Most changes in one answer (default and maximum: the store's `sync_page_limit`)."))]
                       = None) -> Response:
    """Listings changed or removed since `cursor`, each with its content hash: only the latest
    change of each listing, with tombstones (`deleted`) for listings that left the catalog.
    Without a cursor, or with one older than the retained tombstones, the answer is a full
    snapshot with `reset: true`. Send `If-None-Match` with the `ETag` of your last answer to
    poll: 304 while nothing changed."""
    rt = get_runtime(request)
    page_limit = min(limit or rt.settings.sync_page_limit, rt.settings.sync_page_limit)
    page = await catalog_feed.page(session, catalog_feed.decode_cursor(cursor), limit=page_limit)
    if not page.rows and not page.reset:  # at the head: remember it for the fast path
        await rt.cache.set(catalog_feed.HEAD_CACHE_KEY,
                           catalog_feed.head_entry(page.cursor.seq, await catalog_feed.horizon(session)),
                           ttl=rt.settings.sync_head_cache_seconds)
    return _conditional(request.headers.get("if-none-match"), catalog_feed.render(page), public_copy=True)


@router.post("/sync/catalog/diff", response_model=CatalogDiffRead, dependencies=[public()])
async def diff_catalog(body: CatalogDiffRequest, request: Request, session: ReadSession) -> Response:
    """Send the hashes of the listings you hold; get back only what differs: changed and new
    listings (with their JSON, up to the store's `sync_page_limit`; `complete: false` when
    there are more: apply and diff again), the ids no longer public, and a cursor to follow
    the feed from. Requests are limited to 1 MB (about 13,000 held listings)."""
    result = await catalog_feed.diff(session, body.hashes, limit=get_runtime(request).settings.sync_page_limit)
    return Response(content=catalog_feed.render_diff(result), media_type="application/json")


@router.get("/sync/me", response_model=UserSyncPage, responses={**InvalidSyncCursor.responses(), **NOT_MODIFIED})
async def sync_me(request: Request, actor: Annotated[Principal, requires(Permission.sync_read)],
                  session: ReadSession, cursor: SyncCursor = None,
                  limit: Annotated[int, Query(ge=1, le=500, description="Most changes of each kind.")] = 100
                  ) -> Response:
    """Your library (entitlements, with revocations), orders, notifications, installations and
    tasks changed since `cursor`; without one, all of it with `reset: true`. Send
    `If-None-Match` with the `ETag` of your last answer to poll: 304 while nothing changed."""
    page = await user_feed.page(session, user_id=actor.user_id, positions=user_feed.decode_cursor(cursor),
                                limit=limit)
    return _conditional(request.headers.get("if-none-match"), page.model_dump_json().encode(), public_copy=False)
