"""Listing search: the port, the text and cursor rules both adapters share, and the factory.

Two adapters implement :class:`ListingSearch` (ARCHITECTURE.md "ports"), one per database:
``search_sqlite.SQLiteListingSearch`` (FTS5, bm25) and ``search_postgres.PostgresListingSearch``
(weighted ``tsvector`` + GIN, ``ts_rank_cd``). ``tests/catalog/test_search.py`` is the contract
suite both pass. ``docs/search.md`` explains the design and its numbers (PERF-3).

What both share, so that results agree across databases:

- Text is folded and split here, in Python, not by the database: NFKD, diacritics dropped,
  case folded, split on anything that is not a letter, digit or mark (Unicode categories L,
  N, M, Co). The index stores those tokens; the query is built from the same tokens, quoted,
  so no user input ever reaches FTS5 or tsquery syntax.
- A query matches listings containing every term; the last term also matches as a prefix
  when it has at least :data:`MIN_PREFIX_LENGTH` characters ("note" finds "notes").
- Relevance: an exact name or slug match first (compared on folded tokens: "cafe notes"
  equals "Café Notes" and "cafe-notes"), then the engine's text score with field weights
  name, slug > tags > summary, publisher > description.
- Facet counts and totals come from one table of attribute combinations
  (``listing_search_facets``: kind, category, free, delivery, platform set → number of
  indexed listings), kept current by :meth:`ListingSearch.reindex`. Counting a query is then
  "count its matches per combination, then sum combinations", never a scan of listings.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import unicodedata
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Literal, Protocol

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.types import Uuid

from mercato.kit.pagination import InvalidCursor
from mercato.kit.types import UTCDateTime

Sort = Literal["relevance", "popular", "rating", "newest", "price"]

#: Terms of a query beyond this many are ignored (each costs an index lookup).
MAX_QUERY_TERMS = 32
#: Longer tokens are cut to this many characters, in documents and queries alike.
MAX_TERM_LENGTH = 64
#: Only a last term this long or longer matches as a prefix ("no" would match half the catalog).
MIN_PREFIX_LENGTH = 3
#: Each field of a listing contributes at most this many tokens to the index.
MAX_FIELD_TOKENS = 5000
MAX_LIMIT = 100


@dataclass(frozen=True)
class SearchQuery:
    q: str | None = None
    kind: str | None = None  # app | plugin | game
    category_id: uuid.UUID | None = None
    price: Literal["free", "paid"] | None = None  # free: sort_price == 0
    delivery: Literal["digital", "physical"] | None = None  # listing.delivery == it or "both"
    platform: str | None = None  # listing.platforms contains it or "any"
    publisher_id: uuid.UUID | None = None
    sort: Sort = "relevance"  # relevance without q = popular
    cursor: str | None = None
    limit: int = 20
    facets: bool = True
    items: bool = True  # False: only the total and the facets, no page of listings looked up


@dataclass(frozen=True)
class SearchResult:
    ids: list[uuid.UUID]  # ordered page
    next_cursor: str | None
    # "kind", "category" (category id → n), "price" (free/paid), "delivery" (digital/physical),
    # "platform" (each value of the listings' platform lists, "any" included); zero counts left out
    facets: dict[str, dict[str, int]]
    total: int  # matches over all pages


class ListingSearch(Protocol):
    async def search(self, session: AsyncSession, query: SearchQuery) -> SearchResult: ...

    async def reindex(self, session: AsyncSession, listing_id: uuid.UUID) -> None:
        """Bring one listing's index entry up to date, in the caller's transaction. A listing
        that is not published (or no longer exists) is taken out of the index."""

    async def remove(self, session: AsyncSession, listing_id: uuid.UUID) -> None: ...

    async def rebuild(self, session: AsyncSession) -> int:
        """Re-create the whole index from the listings table; returns how many are indexed."""


def listing_search_for(dialect_name: str) -> ListingSearch:
    """The adapter for a database dialect ("sqlite" or "postgresql")."""
    return _adapter(dialect_name)


@cache
def _adapter(dialect_name: str) -> ListingSearch:
    if dialect_name == "sqlite":
        # the backends import this module's base: loaded for the dialect in use
        from mercato.catalog.search_sqlite import SQLiteListingSearch

        return SQLiteListingSearch()
    if dialect_name == "postgresql":
        # the backends import this module's base: loaded for the dialect in use
        from mercato.catalog.search_postgres import PostgresListingSearch

        return PostgresListingSearch()
    raise ValueError(f"No listing search for the {dialect_name!r} database dialect.")


def autogenerate_includes(name: str | None, type_: str, _parents: dict[str, str | None]) -> bool:
    """Alembic ``include_name``: autogenerate leaves alone what has no model on purpose, the
    search index's tables (FTS5 and its shadow tables included) and the listing sort indexes
    of migration 0005."""
    if type_ == "table" and name and name.startswith("listing_search"):
        return False
    return not (type_ == "index" and name and name.startswith("ix_listings_search_"))


# --- text ---------------------------------------------------------------------------------------

_ASCII_WORD = re.compile(r"[a-z0-9]+")


@cache
def _is_token_char(char: str) -> bool:
    category = unicodedata.category(char)
    return category[0] in "LNM" or category == "Co"


def fold(value: str) -> str:
    """Lower-case (case-folded) text without diacritics: "Crème Brûlée" → "creme brulee"."""
    decomposed = unicodedata.normalize("NFKD", value.casefold())
    return "".join(char for char in decomposed if unicodedata.category(char) != "Mn")


def tokens(value: str, *, limit: int = MAX_FIELD_TOKENS) -> list[str]:
    """The searchable words of ``value``, folded, in order."""
    if value.isascii():
        out = _ASCII_WORD.findall(value.lower())
    else:
        out = "".join(char if _is_token_char(char) else " " for char in fold(value)).split()
    return [token[:MAX_TERM_LENGTH] for token in out[:limit]]


@dataclass(frozen=True)
class ParsedQuery:
    terms: tuple[str, ...]  # distinct, in order; every one must match
    prefix: bool  # the last term also matches as a prefix
    key: str  # the whole query as an exact-match key (see exact_key)


def parse_query(q: str) -> ParsedQuery:
    words = tokens(q.replace("\x00", " "), limit=MAX_QUERY_TERMS * 4)
    terms = tuple(dict.fromkeys(words))[:MAX_QUERY_TERMS]
    prefix = bool(terms) and len(terms[-1]) >= MIN_PREFIX_LENGTH and terms[-1] not in terms[:-1]
    return ParsedQuery(terms=terms, prefix=prefix, key=" ".join(words))


def exact_key(value: str) -> str:
    """What an exact name or slug match compares: the folded tokens, space-separated."""
    return " ".join(tokens(value, limit=MAX_QUERY_TERMS * 4))


# --- what gets indexed --------------------------------------------------------------------------

#: Indexed fields, in FTS5 column order, with their weights (SQLite bm25) and tsvector labels
#: (PostgreSQL; A weighs most).
FIELDS: tuple[tuple[str, float, str], ...] = (
    ("name", 10.0, "A"),
    ("slug", 8.0, "A"),
    ("tags", 5.0, "B"),
    ("summary", 3.0, "C"),
    ("publisher", 3.0, "C"),
    ("description", 1.0, "D"),
)


@dataclass(frozen=True)
class Combination:
    """The facet attributes of a listing: one row of ``listing_search_facets``."""

    kind: str
    category_id: uuid.UUID | None
    free: bool
    delivery: str
    platforms: tuple[str, ...]  # sorted, distinct

    @property
    def key(self) -> str:
        return json.dumps([self.kind, self.category_id and str(self.category_id), self.free, self.delivery,
                           list(self.platforms)], separators=(",", ":"))

    @property
    def platforms_json(self) -> str:
        return json.dumps(list(self.platforms), separators=(",", ":"))


@dataclass(frozen=True)
class Document:
    listing_id: uuid.UUID
    publisher_id: uuid.UUID
    combination: Combination
    name_key: str
    slug_key: str
    fields: dict[str, list[str]]  # field → tokens

    def field_text(self, name: str) -> str:
        return " ".join(self.fields[name])


#: The columns of a listing (and its publisher) that indexing reads.
DOCUMENT_COLUMNS = (
    "l.id, l.status, l.kind, l.category_id, l.sort_price, l.delivery, l.platforms, l.publisher_id, "
    "l.name, l.slug, l.tags, l.summary, l.description, p.name AS publisher_name, p.slug AS publisher_slug"
)


def as_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _json_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        value = json.loads(value)
    return list(value or [])


def document_from_row(row: Row[Any]) -> Document:
    """Build a document from a row selected with :data:`DOCUMENT_COLUMNS`."""
    m = row._mapping
    platforms = tuple(sorted({str(p) for p in _json_list(m["platforms"])}))
    combination = Combination(kind=m["kind"], category_id=m["category_id"] and as_uuid(m["category_id"]),
                              free=int(m["sort_price"] or 0) == 0, delivery=m["delivery"], platforms=platforms)
    fields = {
        "name": tokens(m["name"] or ""),
        "slug": tokens(m["slug"] or ""),
        "tags": tokens(" ".join(str(tag) for tag in _json_list(m["tags"]))),
        "summary": tokens(m["summary"] or ""),
        "publisher": tokens(f"{m['publisher_name'] or ''} {m['publisher_slug'] or ''}"),
        "description": tokens(m["description"] or ""),
    }
    return Document(listing_id=as_uuid(m["id"]), publisher_id=as_uuid(m["publisher_id"]), combination=combination,
                    name_key=exact_key(m["name"] or ""), slug_key=exact_key(m["slug"] or ""), fields=fields)


# --- statements ---------------------------------------------------------------------------------

def statement(sql: str, **params: Any) -> TextClause:
    """``text(sql)`` with every parameter bound, typed where the database needs it (ids,
    times) and lists expanded (``IN :ids``)."""
    binds = []
    for name, value in params.items():
        if isinstance(value, uuid.UUID):
            binds.append(bindparam(name, value, type_=Uuid()))
        elif isinstance(value, datetime):
            binds.append(bindparam(name, value, type_=UTCDateTime()))
        elif isinstance(value, (list, tuple)):
            typed = Uuid() if value and isinstance(value[0], uuid.UUID) else None
            binds.append(bindparam(name, list(value), expanding=True, type_=typed))
        else:
            binds.append(bindparam(name, value))
    return text(sql).bindparams(*binds)


# --- sorts and cursors --------------------------------------------------------------------------

@dataclass(frozen=True)
class SortKey:
    expression: str  # over listings aliased ``l``
    kind: Literal["int", "float", "time", "id"]


#: Listing sorts: every key of a sort has the same direction, ties broken by id.
LISTING_SORTS: dict[str, tuple[bool, tuple[SortKey, ...]]] = {  # sort → (descending, keys)
    "popular": (True, (SortKey("(l.download_count + l.install_count)", "int"), SortKey("l.id", "id"))),
    "rating": (True, (SortKey("l.rating_average", "float"), SortKey("l.rating_count", "int"),
                      SortKey("l.id", "id"))),
    "newest": (True, (SortKey("COALESCE(l.published_at, l.created_at)", "time"), SortKey("l.id", "id"))),
    "price": (False, (SortKey("l.sort_price", "int"), SortKey("l.id", "id"))),
}


def keyset_after(expressions: list[str], *, descending: bool, prefix: str = "k") -> str:
    """``(a, b, c)`` strictly after the cursor ``(:k0, :k1, :k2)`` in the sort order, written so
    that an index on (a, b, c) serves it on both databases: ``a <= :k0 AND (a < :k0 OR (…))``."""
    op, op_eq = ("<", "<=") if descending else (">", ">=")
    clause = f"{expressions[-1]} {op} :{prefix}{len(expressions) - 1}"
    for index in range(len(expressions) - 2, -1, -1):
        column, param = expressions[index], f":{prefix}{index}"
        clause = f"{column} {op_eq} {param} AND ({column} {op} {param} OR {clause})"
    return f"({clause})"


def encode_cursor(sort: str, key: list[Any]) -> str:
    values = [value.isoformat() if isinstance(value, datetime) else
              str(value) if isinstance(value, uuid.UUID) else value for value in key]
    raw = json.dumps({"s": sort, "k": values}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, sort: str, kinds: tuple[str, ...]) -> list[Any] | None:
    """The key a cursor points after, checked against the sort it must belong to."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
        if not isinstance(payload, dict) or payload.get("s") != sort:
            raise ValueError("cursor of another sort")
        values = payload["k"]
        if not isinstance(values, list) or len(values) != len(kinds):
            raise ValueError("wrong key length")
        return [_decode_value(value, kind) for value, kind in zip(values, kinds, strict=True)]
    except (ValueError, TypeError, KeyError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidCursor(
            "Use the next_cursor value from the previous page as it was given, with the same sort.",
            errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "invalid_cursor"}]) from exc


def _decode_value(value: Any, kind: str) -> Any:
    if kind == "int":
        if type(value) is not int:
            raise TypeError("not an integer")
        return value
    if kind == "float":
        if type(value) not in (int, float):
            raise TypeError("not a number")
        return float(value)
    if kind == "time":
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("naive")
        return parsed
    if kind == "id":
        return uuid.UUID(value)
    raise ValueError(kind)


def key_value(value: Any, kind: str) -> Any:
    """A sort key value as read from the database, in the form the cursor keeps."""
    if value is None:
        return None
    if kind == "id":
        return as_uuid(value)
    if kind == "float":
        return float(value)
    if kind == "int":
        return int(value)
    return value


# --- facets -------------------------------------------------------------------------------------

def facets_from_rows(rows: Any) -> tuple[dict[str, dict[str, int]], int]:
    """Fold ``(dimension, value, n)`` rows, grouped by one combination attribute each (see the
    adapters' ``facet_sql``), into the result shape: "both" counts as digital and as physical,
    a platform set counts once for each platform in it, and the total is the sum over kinds."""
    facets: dict[str, dict[str, int]] = {"kind": {}, "category": {}, "price": {}, "delivery": {}, "platform": {}}

    def bump(facet: str, key: str, n: int) -> None:
        facets[facet][key] = facets[facet].get(key, 0) + n

    total = 0
    for dimension, value, count in rows:
        n = int(count or 0)
        if n <= 0:
            continue
        if dimension == "kind":
            bump("kind", str(value), n)
            total += n
        elif dimension == "category":
            if value is not None:
                bump("category", str(as_uuid(value)), n)
        elif dimension == "free":
            bump("price", "free" if value in (1, True, "1", "true", "t") else "paid", n)
        elif dimension == "delivery":
            for delivery in ("digital", "physical"):
                if value in (delivery, "both"):
                    bump("delivery", delivery, n)
        elif dimension == "platforms":
            for platform in _json_list(value):
                bump("platform", str(platform), n)
    return facets, total


def combination_filters(query: SearchQuery, platform_clause: str) -> tuple[list[str], dict[str, Any]]:
    """WHERE clauses on ``listing_search_facets c`` for the query's attribute filters."""
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if query.kind is not None:
        clauses.append("c.kind = :kind")
        params["kind"] = query.kind
    if query.category_id is not None:
        clauses.append("c.category_id = :category_id")
        params["category_id"] = query.category_id
    if query.price == "free":
        clauses.append("c.free")
    elif query.price == "paid":
        clauses.append("NOT c.free")
    if query.delivery is not None:
        clauses.append("c.delivery IN (:delivery, 'both')")
        params["delivery"] = query.delivery
    if query.platform is not None:
        clauses.append(platform_clause)
        params["platform"] = query.platform
    return clauses, params


def listing_filters(query: SearchQuery, platform_clause: str) -> tuple[list[str], dict[str, Any]]:
    """The same filters on ``listings l`` (published only, always)."""
    clauses = ["l.status = 'published'"]
    params: dict[str, Any] = {}
    if query.kind is not None:
        clauses.append("l.kind = :kind")
        params["kind"] = query.kind
    if query.category_id is not None:
        clauses.append("l.category_id = :category_id")
        params["category_id"] = query.category_id
    if query.price == "free":
        clauses.append("l.sort_price = 0")
    elif query.price == "paid":
        clauses.append("l.sort_price <> 0")
    if query.delivery is not None:
        clauses.append("l.delivery IN (:delivery, 'both')")
        params["delivery"] = query.delivery
    if query.platform is not None:
        clauses.append(platform_clause)
        params["platform"] = query.platform
    if query.publisher_id is not None:
        clauses.append("l.publisher_id = :publisher_id")
        params["publisher_id"] = query.publisher_id
    return clauses, params


def has_attribute_filters(query: SearchQuery) -> bool:
    return any(value is not None for value in (query.kind, query.category_id, query.price, query.delivery,
                                               query.platform))


def empty_result() -> SearchResult:
    return SearchResult(ids=[], next_cursor=None, total=0,
                        facets={"kind": {}, "category": {}, "price": {}, "delivery": {}, "platform": {}})


def clamp_limit(limit: int) -> int:
    return max(1, min(int(limit), MAX_LIMIT))


# --- answers already computed ------------------------------------------------------------------

class SearchCache:
    """Counts and first relevance pages already computed, per database and query, valid while
    the index generation is unchanged. Every change to the index draws a new random generation
    in the same transaction (``listing_search_state``), so an entry is never served for an
    index it was not computed from: the cache is exact, not a time-based approximation.
    Popularity, rating and newest pages read live counters and are never cached."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Any, tuple[int, Any]] = OrderedDict()

    def get(self, key: Any, generation: int | None) -> Any:
        entry = self._entries.get(key)
        if generation is None or entry is None or entry[0] != generation:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[1]

    def put(self, key: Any, generation: int | None, value: Any) -> None:
        if generation is None or self.size <= 0:
            return
        self._entries[key] = (generation, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


def new_generation() -> int:
    return secrets.randbits(62)


# A request that runs several searches in one read session (a storefront page: its results,
# each chosen filter's alternatives, the home page's shelves) may opt in to reading the index
# generation once: ``session.info[GENERATION_MEMO] = {}``. Its searches then answer from one
# generation (cache entries of that generation); a bump in the same session forgets it.
GENERATION_MEMO = "mercato.search_generation"


def read_generation_once(session: AsyncSession) -> None:
    """Opt this session in to reading the index generation once (see GENERATION_MEMO)."""
    session.info.setdefault(GENERATION_MEMO, {})


async def bump_generation(session: AsyncSession) -> None:
    """Mark the index as changed (the caller's transaction)."""
    session.info.pop(GENERATION_MEMO, None)
    await session.execute(statement("UPDATE listing_search_state SET generation = :generation",
                                    generation=new_generation()))


# --- the flow both adapters share ---------------------------------------------------------------

Candidate = tuple[Any, list[Any]]  # (adapter's reference to an index entry, its sort key)


class SqlListingSearch:
    """The search flow; the adapters supply their SQL for text matching and the index."""

    #: WHERE clause on ``listing_search_facets c`` / ``listings l``: the platform filter
    combination_platform: str
    listing_platform: str
    #: kinds of the relevance sort key (rest, score, tie-break)
    relevance_kinds: tuple[str, ...]

    # adapter hooks ------------------------------------------------------------------------------

    def hits_sql(self, query: SearchQuery, parsed: ParsedQuery | None,
                 params: dict[str, Any]) -> str | None:  # pragma: no cover - abstract
        """A SELECT of ``(code, n)``: matches per combination, or None to read the stored counts."""
        raise NotImplementedError

    async def relevance_candidates(self, session: AsyncSession, query: SearchQuery, parsed: ParsedQuery,
                                   after: list[Any] | None, limit: int) -> list[Candidate]:  # pragma: no cover
        raise NotImplementedError

    async def published(self, session: AsyncSession, refs: list[Any]) -> dict[Any, uuid.UUID]:  # pragma: no cover
        """Which candidates are published listings right now: reference → listing id."""
        raise NotImplementedError

    def listings_source(self, query: SearchQuery) -> str:
        """FROM clause of a page read straight from ``listings l`` (no text query)."""
        return "listings l"

    def matched_listings_sql(self, query: SearchQuery, parsed: ParsedQuery,
                             params: dict[str, Any]) -> tuple[str, list[str]]:  # pragma: no cover
        """FROM clause joining text matches to ``listings l``, and extra WHERE clauses."""
        raise NotImplementedError

    def __init__(self, cache_size: int = 4096) -> None:
        self.cache = SearchCache(cache_size)

    # the flow -----------------------------------------------------------------------------------

    async def search(self, session: AsyncSession, query: SearchQuery) -> SearchResult:
        limit = clamp_limit(query.limit)
        parsed: ParsedQuery | None = None
        if query.q is not None and query.q.strip():
            parsed = parse_query(query.q)
        sort = query.sort if query.sort != "relevance" or parsed is not None else "popular"
        if sort == "relevance":
            kinds = self.relevance_kinds
        elif sort in LISTING_SORTS:
            kinds = tuple(key.kind for key in LISTING_SORTS[sort][1])
        else:
            raise ValueError(f"unknown sort {sort!r}")
        after = decode_cursor(query.cursor, sort, kinds)
        if parsed is not None and not parsed.terms:  # only punctuation, symbols, emoji: nothing to find
            result = empty_result()
            return result if query.facets else SearchResult(ids=[], next_cursor=None, facets={}, total=0)
        generation = None
        if self.cache.size > 0:
            memo = session.info.get(GENERATION_MEMO)
            generation = memo.get("generation") if memo is not None else None
            if generation is None:
                generation = await session.scalar(statement("SELECT generation FROM listing_search_state"))
                if memo is not None:
                    memo["generation"] = generation
        where = (str(session.bind.url) if session.bind is not None else "", parsed, query.kind, query.category_id,
                 query.price, query.delivery, query.platform, query.publisher_id)
        counted = self.cache.get(("count", query.facets, where), generation)
        if counted is None:
            counted = await self._count(session, query, parsed, with_facets=query.facets)
            self.cache.put(("count", query.facets, where), generation, counted)
        facets, total = {name: dict(values) for name, values in counted[0].items()}, counted[1]
        if (total == 0 and parsed is not None) or not query.items:
            rows: list[Candidate] = []
        elif sort == "relevance":
            assert parsed is not None
            rows = await self._relevance_page(session, query, parsed, after, limit, cache_key=(
                "relevance", where, tuple(after) if after else None, limit), generation=generation)
        else:
            rows = await self._listing_page(session, query, parsed, sort, after, limit)
        next_cursor = encode_cursor(sort, rows[limit - 1][1]) if len(rows) > limit else None
        return SearchResult(ids=[listing_id for listing_id, _ in rows[:limit]], next_cursor=next_cursor,
                            facets=facets if query.facets else {}, total=total)

    async def _count(self, session: AsyncSession, query: SearchQuery, parsed: ParsedQuery | None, *,
                     with_facets: bool) -> tuple[dict[str, dict[str, int]], int]:
        clauses, params = combination_filters(query, self.combination_platform)
        hits = self.hits_sql(query, parsed, params)
        sql = self.facet_sql(hits, clauses) if with_facets else self.total_sql(hits, clauses)
        rows = list(await session.execute(statement(sql, **params)))
        return facets_from_rows(rows)

    def total_sql(self, hits: str | None, clauses: list[str]) -> str:
        if hits is None:
            return ("SELECT 'kind', 'all', SUM(c.n) FROM listing_search_facets c WHERE "
                    + " AND ".join(["c.n > 0", *clauses]))
        return ("SELECT 'kind', 'all', SUM(h.n) FROM (" + hits + ") h JOIN listing_search_facets c ON c.code = h.code"
                + (" WHERE " + " AND ".join(clauses) if clauses else ""))

    def facet_sql(self, hits: str | None, clauses: list[str]) -> str:  # pragma: no cover - abstract
        """``(dimension, value, n)`` rows: matches grouped by kind, category, free, delivery and
        platform set (the raw combination values; ``facets_from_rows`` folds them)."""
        raise NotImplementedError

    async def _relevance_page(self, session: AsyncSession, query: SearchQuery, parsed: ParsedQuery,
                              after: list[Any] | None, limit: int, *, cache_key: Any,
                              generation: int | None) -> list[Candidate]:
        """Best matches from the index, each checked against ``listings.status`` (always, also
        for cached candidates): an entry the index still holds for a listing that is no longer
        published is skipped, and the page is filled from the next candidates."""
        wanted = limit + 1
        page: list[Candidate] = []
        position = after
        while len(page) < wanted:
            batch = wanted - len(page)
            candidates = None
            if position is after:
                candidates = self.cache.get(cache_key, generation)
            if candidates is None:
                candidates = await self.relevance_candidates(session, query, parsed, position, batch)
                if position is after:
                    self.cache.put(cache_key, generation, candidates)
            if not candidates:
                break
            published = await self.published(session, [ref for ref, _ in candidates])
            page.extend((published[ref], key) for ref, key in candidates if ref in published)
            if len(candidates) < batch:
                break
            position = candidates[-1][1]
        return page

    async def _listing_page(self, session: AsyncSession, query: SearchQuery, parsed: ParsedQuery | None,
                            sort: str, after: list[Any] | None, limit: int) -> list[Candidate]:
        descending, keys = LISTING_SORTS[sort]
        clauses, params = listing_filters(query, self.listing_platform)
        source = self.listings_source(query)
        if parsed is not None:
            source, extra = self.matched_listings_sql(query, parsed, params)
            clauses.extend(extra)
        expressions = [key.expression for key in keys]
        if after is not None:
            clauses.append(keyset_after(expressions, descending=descending))
            params.update({f"k{index}": value for index, value in enumerate(after)})
        direction = " DESC" if descending else ""
        sql = (f"SELECT {', '.join(f'{e} AS s{i}' for i, e in enumerate(expressions))} FROM {source} "
               f"WHERE {' AND '.join(clauses)} ORDER BY {', '.join(e + direction for e in expressions)} "
               "LIMIT :limit")
        stmt = statement(sql, **params, limit=limit + 1).columns(
            **{f"s{i}": UTCDateTime() for i, key in enumerate(keys) if key.kind == "time"})
        rows = await session.execute(stmt)
        out: list[Candidate] = []
        for row in rows:
            key = [key_value(value, spec.kind) for value, spec in zip(row, keys, strict=True)]
            out.append((key[-1], key))
        return out
