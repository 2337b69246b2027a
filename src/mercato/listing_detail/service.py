"""The listing detail (``GET /listings/{id_or_slug}``): assembled from stored documents in one
indexed read, rendered from the database when they are missing or too old (and then stored).

A read model above the domain modules: it gathers the listing (catalog), its approved
versions (releases) and its rating histogram (ratings), which all depend on the catalog, so
the catalog itself cannot.

A detail is the listing's own part (``head``: every field up to ``"related":``, with its
versions and rating histogram) followed by its related listings, which are the most popular
published listings of its category except itself. The category's rendered listings are
stored once for the whole category, so a change to a listing clears its own document and its
category's, never those of every listing beside it. What clears them is the database itself
(triggers of migration 0012): every writer of what shows — catalog edits and transitions,
stock taken and returned by orders, versions, reviews, publishers, categories — bumps the
documents' generation in its own transaction, and a rendering is stored only if the
generation it read first is still current.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from mercato.access.principal import Principal
from mercato.catalog import cache_keys, presenter
from mercato.catalog import service as catalog
from mercato.catalog.cache_keys import DETAIL_CACHE_PREFIX
from mercato.catalog.errors import ListingNotFound
from mercato.catalog.schemas import ListingDetail, VersionBrief
from mercato.kit.cache import SingleFlight
from mercato.kit.logging import log
from mercato.listing_detail import repository
from mercato.platform.runtime import Runtime
from mercato.ratings import service as ratings
from mercato.releases import service as publishing

RELATED = 6
_EMPTY_RELATED_TAIL = "[]}"


@dataclass(frozen=True)
class Detail:
    listing_id: uuid.UUID
    public: bool  # a published listing's detail: the same for every caller, cacheable
    body: bytes
    etag: str


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def assemble(head: str, items: str | None, listing_id: uuid.UUID) -> bytes:
    """The detail's JSON: its head, then up to six of its category's listings but itself."""
    own = str(listing_id)
    related: list[str] = []
    for line in (items.split("\n") if items else ()):
        item_id, _, item = line.partition("\t")
        if item_id != own:
            related.append(item)
            if len(related) == RELATED:
                break
    return f"{head}[{','.join(related)}]}}".encode()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _fresh(document: repository.StoredDocument, max_age_ms: float, now_ms: int) -> bool:
    if document.head is None or document.built_at_ms is None or now_ms - document.built_at_ms >= max_age_ms:
        return False
    if document.category_id is None:
        return True
    return (document.items is not None and document.items_built_at_ms is not None
            and now_ms - document.items_built_at_ms < max_age_ms)


async def from_documents(rt: Runtime, key: str) -> Detail | None:
    """A published listing's detail from its stored documents, or None when they are missing
    or too old (or the listing is not published: only published listings' are stored)."""
    max_age_ms = rt.settings.catalog_document_seconds * 1000
    if max_age_ms <= 0:
        return None
    document = await repository.read_document(rt.db.reader, key)
    if document is None or not _fresh(document, max_age_ms, _now_ms()):
        return None
    body = assemble(document.head, document.items, document.listing_id)  # type: ignore[arg-type]
    return Detail(document.listing_id, True, body, etag_of(body))


async def render(rt: Runtime, viewer: Principal | None, key: str) -> Detail:
    """Build the detail from the database (ListingNotFound when the viewer may not see it),
    and store its documents when the listing is published."""
    async with rt.db.read_session() as session:
        # Generations first: a change committed after this point bumps them, and the
        # rendering below is then not stored (it may predate the change).
        generation = await repository.document_generation(session, key)
        listing = await catalog.get_visible(session, viewer, key)
        category_generation = top = None
        if listing.category_id is not None:
            category_generation = await repository.category_generation(session, listing.category_id)
            top = await catalog.most_popular_in_category(session, listing.category_id, limit=RELATED + 1)
        versions = [VersionBrief.model_validate(v) for v in await publishing.approved_versions(session, listing.id)]
        # The listing and its category's listings presented together: one query for their
        # publishers and one for their categories.
        base, *popular = await presenter.present(session, [listing, *(top or ())])
        histogram = await ratings.histogram(session, listing.id)
    full = ListingDetail(**base.model_dump(), versions=versions, rating_histogram=histogram, related=[])
    head = full.model_dump_json().removesuffix(_EMPTY_RELATED_TAIL)
    items = "\n".join(f"{item.id}\t{item.model_dump_json()}" for item in popular) if top is not None else None
    body = assemble(head, items, listing.id)
    public = listing.status == "published"
    if public and generation is not None and rt.settings.catalog_document_seconds > 0:
        await _store(rt, listing.id, generation, head, listing.category_id, category_generation, items)
    return Detail(listing.id, public, body, etag_of(body))


async def _store(rt: Runtime, listing_id: uuid.UUID, generation: int, head: str, category_id: uuid.UUID | None,
                 category_generation: int | None, items: str | None) -> None:
    """Keep the renderings (compare-and-set on the generations). A failure costs only the
    next reader a rendering: logged, never the request's failure."""
    now = _now_ms()
    try:
        async with rt.db.transaction() as session:
            await repository.store_listing_document(session, listing_id, generation=generation, head=head,
                                                    category_id=category_id, built_at_ms=now)
            if category_id is not None and category_generation is not None and items is not None:
                await repository.store_category_document(session, category_id, generation=category_generation,
                                                         items=items, built_at_ms=now)
    except SQLAlchemyError as error:
        log.warning("catalog: could not store a listing document", listing_id=str(listing_id), error=str(error))


# --- the detail as GET /listings/{id} answers it: cache, stored documents, rendering ----------
# Slugs never change, so which id a slug names can be remembered for good in each process.
SLUG_IDS: dict[str, str] = {}


def remember_slug(slug: str, listing_id: str) -> None:
    if len(SLUG_IDS) > 100_000:
        SLUG_IDS.clear()
    SLUG_IDS[slug] = listing_id


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


# The storefront keeps a listing page's extras (manifest facts, first reviews) under this prefix;
# whatever evicts a detail evicts them too (catalog.cache_keys.cache_keys).
PAGE_CACHE_PREFIX = cache_keys.PAGE_CACHE_PREFIX
# One rendering of a listing's detail at a time per process; the others wait for it.
RENDERING = SingleFlight()


async def keep(rt: Runtime, key: str, found: Detail) -> None:
    """Remember a published listing's detail in the cache (and which id its slug names)."""
    if not is_uuid(key):
        remember_slug(key, str(found.listing_id))
    await rt.cache.set(DETAIL_CACHE_PREFIX + str(found.listing_id), found.etag.encode() + b"\n" + found.body,
                       ttl=rt.settings.catalog_cache_seconds)


async def detail_for(rt: Runtime, viewer: Principal | None, key: str) -> Detail:
    """The detail ``GET /listings/{id}`` answers (the route and the storefront's listing page):
    from the cache, else the stored documents, else rendered (and kept)."""
    key = key.lower()
    known_id = key if is_uuid(key) else SLUG_IDS.get(key)
    cached = await rt.cache.get(DETAIL_CACHE_PREFIX + known_id) if known_id else None
    if cached is not None:
        etag, _, body = cached.partition(b"\n")
        return Detail(uuid.UUID(known_id), True, body, etag.decode())  # type: ignore[arg-type]
    found = await from_documents(rt, key)
    if found is None:
        try:
            found = await RENDERING.run(key, lambda: render(rt, None, key))
        except ListingNotFound:
            if viewer is None:
                raise
            return await render(rt, viewer, key)
        if not found.public:
            return found
    await keep(rt, key, found)
    return found
