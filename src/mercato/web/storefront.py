"""The storefront (WEB.md, U1): home, search, categories, listing and publisher pages.

The same code as the API, for pages: the search page calls the function behind
GET /api/v1/listings, the listing page renders the detail document of
GET /api/v1/listings/{id}, its versions and reviews come from the publishing and ratings
endpoints' functions, and a review is written through the ratings service.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from collections import OrderedDict
from typing import Annotated, Any, Literal

from fastapi import Path, Query, Request
from fastapi.responses import Response
from pydantic import TypeAdapter, ValidationError
from starlette.types import ASGIApp, Scope

from mercato.access.principal import Principal
from mercato.catalog import service as catalog
from mercato.catalog.cache_keys import DETAIL_CACHE_PREFIX
from mercato.catalog.errors import CategoryNotFound
from mercato.catalog.schemas import ListingDetail, ListingPage
from mercato.catalog.search.cache import read_generation_once
from mercato.kit.errors import Conflict, Forbidden, found_or_raise
from mercato.kit.http import FastPath, register_fast_path
from mercato.kit.pagination import CursorParam
from mercato.kit.schemas import Slug
from mercato.listing_detail import service as detail
from mercato.platform.routing import ReadSession, RuntimeDep, WriteSession
from mercato.platform.runtime import Runtime
from mercato.publishers import service as publishers
from mercato.ratings import service as ratings
from mercato.ratings.schemas import ReviewCreate, ReviewRead
from mercato.releases import service as publishing
from mercato.releases.errors import VersionNotFound
from mercato.web import once
from mercato.web.pages import (
    answer_shared,
    form_values,
    page_router,
    redirect,
    render,
    render_shared,
    validation_messages,
)
from mercato.web.session import COOKIE as SESSION_COOKIE
from mercato.web.session import OptionalUser, SignedIn

router = page_router()

SHELF_SIZE = 10
PAGE_SIZE = 20
REVIEWS = 10  # the newest reviews on a listing page
SHELVES = (("new", "New and updated", {"sort": "newest"}), ("popular", "Popular", {"sort": "popular"}),
           ("top-rated", "Top rated", {"sort": "rating"}), ("free", "Free", {"price": "free", "sort": "popular"}))
SORTS = {"relevance": "Best match", "popular": "Most popular", "rating": "Top rated", "newest": "Newest",
         "price": "Price: low to high"}
FILTERS = ("kind", "category", "price", "delivery", "platform")
FACET_TITLES = {"kind": "Type", "category": "Category", "price": "Price", "delivery": "Delivery",
                "platform": "Platform"}
VALUE_NAMES = {"app": "Apps", "plugin": "Plugins", "game": "Games", "free": "Free", "paid": "Paid",
               "digital": "Digital", "physical": "Physical", "any": "Any platform", "linux-x64": "Linux x64",
               "linux-arm64": "Linux ARM64", "macos-x64": "macOS Intel", "macos-arm64": "macOS Apple silicon",
               "windows-x64": "Windows x64"}
ListingKey = Annotated[str, Path(pattern=r"^[A-Za-z0-9-]{2,64}$")]


async def search(session: ReadSession, rt: Runtime, *, categories: list[Any] | None = None, q: str | None = None,
                 kind: str | None = None, category: str | None = None, price: str | None = None,
                 delivery: str | None = None, platform: str | None = None, publisher: str | None = None,
                 sort: str = "relevance", cursor: str | None = None, limit: int = PAGE_SIZE,
                 facets: bool = True) -> ListingPage:
    """GET /api/v1/listings, the same function (arguments validated by the page's own query
    types). A page that searches more than once passes the categories it read, and its
    searches read the index generation once (catalog.search.cache.read_generation_once)."""
    read_generation_once(session)
    return await catalog.search_listings(
        session, search=rt.search, known=categories, q=q, kind=kind, category=category, price=price, delivery=delivery,
        platform=platform, publisher=publisher, sort=sort, cursor=cursor, limit=limit, facets=facets)


def _url(path: str, params: dict[str, str | None]) -> str:
    kept = {k: v for k, v in params.items() if v}
    return path + ("?" + urllib.parse.urlencode(kept) if kept else "")


# --- home ----------------------------------------------------------------------------------------

# The shelves as last read, per process: (index generation, time bucket) → the home page's context.
_SHELVES: dict[str, Any] = {"key": None, "context": None}


@router.get("/")
async def home(request: Request, session: ReadSession, user: OptionalUser, rt: RuntimeDep) -> Response:
    """Search box, categories and four shelves. The shelves are read at most once per
    ``catalog_cache_seconds`` and index generation in each process: a listing that enters,
    changes or leaves the index shows at once, while the order by popularity and rating (live
    counters) may lag by that long. Anonymous readers share one rendered page (render_shared)."""
    period = rt.settings.catalog_cache_seconds
    key = ("home", rt.settings.resolved_database_url, await catalog.index_generation(session),
           int(time.monotonic() // period) if period else None)
    fresh = period > 0 and _SHELVES["key"] == key
    if user is None and fresh:
        shared = answer_shared(request, key)
        if shared is not None:
            return shared
    if not fresh:
        shelves = []
        categories = await catalog.categories(session)
        for name, title, params in SHELVES:
            page = await search(session, rt, categories=categories, limit=SHELF_SIZE, facets=False, **params)
            if page.items:
                shelves.append({"key": name, "title": title, "items": page.items, "more": _url("/search", params)})
        _SHELVES.update(key=key, context={"categories": categories, "shelves": shelves})
    if user is None and period > 0:
        return await render_shared(request, "store/home.html", _SHELVES["context"], key=key)
    return await render(request, "store/home.html", _SHELVES["context"])


# --- search and categories -----------------------------------------------------------------------

async def _results(request: Request, session: ReadSession, rt: Runtime, *, path: str, params: dict[str, Any],
                   cursor: str | None, heading: str, category: Any = None, publisher: Any = None) -> Response:
    categories = await catalog.categories(session)
    page = await search(session, rt, categories=categories, cursor=cursor, **params)
    names = {c.slug: c.name for c in categories}
    # A chosen filter's own group counts what choosing another value instead would find
    # (the other filters still apply), so the alternatives stay visible.
    # Counts only: no page of listings read and presented for them (catalog.facet_counts).
    own_counts = {}
    for name in FILTERS:
        if params.get(name) and not (name == "category" and category is not None):
            others = {k: v for k, v in params.items() if k in ("q", *FILTERS) and k != name}
            own_counts[name] = (await catalog.facet_counts(session, search=rt.search, categories=categories,
                                                           **others)
                                ).get(name) or {}
    facets = []
    for name in FILTERS:
        counts = own_counts.get(name, page.facets.get(name) or {})
        if not counts or (name == "category" and category is not None):
            continue
        options = []
        for value, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
            chosen = params.get(name) == value
            toggled = {**params, name: None if chosen else value}
            options.append({"label": names.get(value, VALUE_NAMES.get(value, value)) if name == "category"
                            else VALUE_NAMES.get(value, value), "count": count, "chosen": chosen,
                            "url": _url(path, toggled)})
        facets.append({"name": name, "title": FACET_TITLES[name], "options": options})
    active = [{"label": f"{FACET_TITLES[n]}: {names.get(params[n], VALUE_NAMES.get(params[n], params[n]))}",
               "url": _url(path, {**params, n: None})}
              for n in FILTERS if params.get(n) and not (n == "category" and category is not None)]
    context = {
        "page": page, "params": params, "facets": facets, "active": active, "sorts": SORTS, "path": path,
        "heading": heading, "category": category, "publisher": publisher,
        "next_url": _url(path, {**params, "cursor": page.next_cursor}) if page.next_cursor else None,
        "hidden": {k: v for k, v in params.items() if v and k not in ("sort", "category" if category else "")}}
    if SESSION_COOKIE not in request.cookies:
        # Anonymous readers of the same results share one rendered page (render_shared), keyed on
        # everything it shows: rendering costs more than the search whose answer it shows.
        query = request.query_params.get("q", "") if path == "/search" else ""  # as render() shows it
        shown = json.dumps([params, facets, active, heading, context["next_url"], path, context["hidden"],
                            getattr(category, "description", None), getattr(publisher, "slug", None), query],
                           default=str)
        return await render_shared(request, "store/search.html", {**context, "query": query},
                                   key=("results", page.model_dump_json(), shown))
    return await render(request, "store/search.html", context)


@router.get("/search")
async def search_page(
        request: Request, session: ReadSession, rt: RuntimeDep,
        q: Annotated[str | None, Query(max_length=200)] = None,
        kind: Literal["app", "plugin", "game"] | None = None,
        category: Slug | None = None,
        price: Literal["free", "paid"] | None = None,
        delivery: Literal["digital", "physical"] | None = None,
        platform: Annotated[str | None, Query(pattern=r"^[a-z0-9-]{2,32}$")] = None,
        sort: Literal["relevance", "popular", "rating", "newest", "price"] | None = None,
        cursor: CursorParam = None) -> Response:
    q = (q or "").strip() or None
    params = {"q": q, "kind": kind, "category": category, "price": price, "delivery": delivery,
              "platform": platform, "sort": sort or ("relevance" if q else "popular")}
    heading = f"Results for “{q}”" if q else "All listings"
    return await _results(request, session, rt, path="/search", params=params, cursor=cursor, heading=heading)


@router.get("/categories/{slug}")
async def category_page(
        request: Request, session: ReadSession, rt: RuntimeDep, slug: Slug,
        kind: Literal["app", "plugin", "game"] | None = None,
        price: Literal["free", "paid"] | None = None,
        delivery: Literal["digital", "physical"] | None = None,
        platform: Annotated[str | None, Query(pattern=r"^[a-z0-9-]{2,32}$")] = None,
        sort: Literal["relevance", "popular", "rating", "newest", "price"] = "popular",
        cursor: CursorParam = None) -> Response:
    category = found_or_raise(next((c for c in await catalog.categories(session) if c.slug == slug), None),
                              CategoryNotFound, f"There is no category {slug!r}.")
    params = {"category": slug, "kind": kind, "price": price, "delivery": delivery, "platform": platform,
              "sort": sort}
    return await _results(request, session, rt, path=f"/categories/{slug}", params=params, cursor=cursor,
                          heading=category.name, category=category)


# --- publisher --------------------------------------------------------------------------------------

@router.get("/publishers/{slug}")
async def publisher_page(request: Request, session: ReadSession, rt: RuntimeDep, slug: Slug,
                         cursor: CursorParam = None) -> Response:
    publisher = await publishers.get(session, slug)  # PublisherNotFound: the 404 page
    page = await search(session, rt, publisher=slug, sort="newest", cursor=cursor, facets=False)
    return await render(request, "store/publisher.html", {
        "publisher": publisher, "page": page,
        "next_url": _url(f"/publishers/{slug}", {"cursor": page.next_cursor}) if page.next_cursor else None})


# --- listing -----------------------------------------------------------------------------------------

# A detail's JSON is a function of its ETag: parsed once per ETag in each process, not on every
# page. The models are only read (by the templates), so the pages may share them.
_PARSED: OrderedDict[str, ListingDetail] = OrderedDict()
# The listing page's extras as cached (bytes) → parsed, likewise.
_EXTRAS: OrderedDict[bytes, tuple[dict[str, Any] | None, list[ReviewRead]]] = OrderedDict()
PARSED_SIZE = 256


def _remember(memo: OrderedDict[Any, Any], key: Any, value: Any) -> Any:
    memo[key] = value
    if len(memo) > PARSED_SIZE:
        memo.popitem(last=False)
    return value


async def _detail(rt: Any, viewer: Principal | None, key: str) -> tuple[ListingDetail, detail.Detail]:
    """The listing's detail as GET /api/v1/listings/{id} answers it (cache, documents, else rendered)."""
    found = await detail.detail_for(rt, viewer, key)
    if not found.public:
        return ListingDetail.model_validate_json(found.body), found
    parsed = _PARSED.get(found.etag)
    if parsed is None:
        parsed = _remember(_PARSED, found.etag, ListingDetail.model_validate_json(found.body))
    else:
        _PARSED.move_to_end(found.etag)
    return parsed, found


def _manifest_facts(manifest: dict[str, Any]) -> dict[str, Any]:
    compatibility = manifest.get("compatibility") or {}
    requirements = manifest.get("requirements") or {}
    permissions = manifest.get("permissions") or {}
    return {"host": compatibility.get("host"), "platforms": compatibility.get("platforms") or [],
            "requirements": {k: v for k, v in requirements.items() if v is not None},
            "network": permissions.get("network") or [], "filesystem": permissions.get("filesystem") or [],
            "notifications": bool(permissions.get("notifications")),
            "dependencies": manifest.get("dependencies") or {}}


async def _extras(session: Any, viewer: Principal | None,
                  listing: ListingDetail) -> tuple[dict[str, Any] | None, list[ReviewRead]]:
    """The latest version's manifest facts and the ten newest reviews, as the publishing and
    ratings endpoints answer them to this viewer."""
    facts = None
    if listing.latest_version is not None:
        try:
            shown = await catalog.get_visible(session, viewer, listing.slug)
            version = await publishing.get_version(session, viewer, shown, listing.latest_version.version)
            facts = _manifest_facts(version.manifest)
        except VersionNotFound:
            facts = None
    reviews = await ratings.review_page(session, viewer=viewer, key=listing.slug, sort="newest", cursor=None,
                                        limit=REVIEWS)
    return facts, reviews.items


_REVIEW_LIST = TypeAdapter(list[ReviewRead])


async def _cached_extras(rt: Any, session: Any, listing: ListingDetail,
                         found: detail.Detail) -> tuple[dict[str, Any] | None, list[ReviewRead], bytes]:
    """The extras of a published listing for anonymous readers (the same for all of them),
    cached beside its detail under the detail's ETag: a changed detail (a new version, a
    rating) makes them stale at once, and every review change and everything that evicts the
    detail evicts them too (catalog.cache_keys.cache_keys). Also answers the extras' cached
    form, which identifies them."""
    cache_key = detail.PAGE_CACHE_PREFIX + str(found.listing_id)
    cached = await rt.cache.get(cache_key)
    if cached is not None:
        etag, _, payload = cached.partition(b"\n")
        if etag.decode() == found.etag:
            parsed = _EXTRAS.get(payload)
            if parsed is None:
                facts_json, _, reviews_json = payload.partition(b"\n")
                parsed = _remember(_EXTRAS, payload, (json.loads(facts_json),
                                                      _REVIEW_LIST.validate_json(reviews_json)))
            else:
                _EXTRAS.move_to_end(payload)
            return (*parsed, payload)
    facts, reviews = await _extras(session, None, listing)
    payload = json.dumps(facts).encode() + b"\n" + _REVIEW_LIST.dump_json(reviews)
    await rt.cache.set(cache_key, found.etag.encode() + b"\n" + payload, ttl=rt.settings.catalog_cache_seconds)
    return facts, reviews, payload


async def _listing(request: Request, session: Any, rt: Any, user: Any, key: str, *, status_code: int = 200,
                   **context: Any) -> Response:
    viewer = user.principal if user else None
    listing, found = await _detail(rt, viewer, key)
    shared = viewer is None and found.public and not context and status_code == 200  # a plain anonymous GET
    if shared:
        facts, reviews, extras = await _cached_extras(rt, session, listing, found)
    else:
        facts, reviews = await _extras(session, viewer, listing)
    context.setdefault("review_values", {"rating": "5"})
    context.setdefault("review_errors", {})
    values = {
        "listing": listing, "facts": facts, "reviews": reviews, "publisher": listing.publisher,
        "histogram": [(star, listing.rating_histogram.get(str(star), 0)) for star in range(5, 0, -1)],
        "histogram_total": sum(listing.rating_histogram.values()), "wrote_review": any(r.mine for r in reviews),
        **context}
    if shared:
        # the same page for every anonymous reader while the detail (its ETag) and extras stand
        return await render_shared(request, "store/listing.html", values, key=_shared_listing_key(found.etag, extras))
    return await render(request, "store/listing.html", {**values, "idempotency_key": once.new_key()},
                        status_code=status_code)


def _shared_listing_key(etag: str, extras: bytes) -> tuple[str, str, bytes]:
    """The shared listing page's key, for the route that renders it and the fast path that
    answers it: the detail's ETag and the extras cached under it."""
    return ("listing", etag, extras)


@router.get("/listings/{key}")
async def listing_page(request: Request, key: ListingKey, user: OptionalUser, session: ReadSession,
                       rt: RuntimeDep) -> Response:
    return await _listing(request, session, rt, user, key)


# --- the shared listing page, answered before routing ------------------------------------------
# An anonymous reader's listing page is the shared page (render_shared) of the listing's current
# detail and extras, both in the cache. When that page was rendered already, the request
# middleware answers it before routing and the page's dependencies (kit/http.py, FastPath): the
# route would read the same two cache entries and answer the same text, at ~10 times the CPU.
# Anything else (a session cookie, credentials, a query, a miss) takes the route.
_LISTING_PAGE = re.compile(r"^/listings/([A-Za-z0-9-]{2,64})$")


async def _answer_shared_listing(scope: Scope, headers: dict[str, str]) -> ASGIApp | None:
    found = _LISTING_PAGE.match(scope["path"])
    if (found is None or scope.get("query_string") or "authorization" in headers
            or f"{SESSION_COOKIE}=" in headers.get("cookie", "")):
        return None
    key = found[1]
    known_id = key if detail.is_uuid(key) and key == key.lower() else detail.SLUG_IDS.get(key)
    if known_id is None:
        return None
    cache = scope["app"].state.runtime.cache
    cached_detail = await cache.get(DETAIL_CACHE_PREFIX + known_id)
    cached_extras = await cache.get(detail.PAGE_CACHE_PREFIX + known_id) if cached_detail else None
    if cached_detail is None or cached_extras is None:
        return None
    etag = cached_detail.partition(b"\n")[0]
    extras_etag, _, extras = cached_extras.partition(b"\n")
    if extras_etag != etag:  # the extras of an older detail: the route renders the page anew
        return None
    return answer_shared(Request(scope), _shared_listing_key(etag.decode(), extras))


register_fast_path(FastPath(prefix="/listings/", template="/listings/{key}", answer=_answer_shared_listing))


@router.post("/listings/{key}/reviews")
async def write_review(request: Request, key: ListingKey, user: SignedIn, session: WriteSession,
                       rt: RuntimeDep) -> Response:
    """Like POST /api/v1/listings/{id}/reviews: owners review once."""
    values = form_values(await request.form(), "rating", "title", "body")
    errors: dict[str, str] = {}
    try:
        body = ReviewCreate(rating=int(values["rating"]) if values["rating"].isdigit() else 0,
                            title=values["title"], body=values["body"])
        await ratings.create(session, actor=user.principal, key=key, rating=body.rating, title=body.title,
                             body=body.body)
    except ValidationError as error:
        errors = validation_messages(error)
    except (Forbidden, Conflict) as error:  # not an owner, a member of the publisher, already reviewed
        errors = {"form": error.detail}
    if errors:
        await session.rollback()
        return await _listing(request, session, rt, user, key, status_code=422, review_values=values,
                              review_errors=errors)
    return redirect(f"/listings/{key}#reviews")
