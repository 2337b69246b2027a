"""The search flow both adapters share: validate the query and its cursor, count the
matches per facet (cached per index generation), then read one page, by relevance from the
index or by a listing sort straight from ``listings``. The adapters supply the SQL of text
matching and of the index (:class:`SqlListingSearch`'s hooks)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.catalog.search.cache import GENERATION_MEMO, SearchCache
from mercato.catalog.search.cursor import LISTING_SORTS, decode_cursor, encode_cursor, key_value, keyset_after
from mercato.catalog.search.query import (
    ParsedQuery,
    SearchQuery,
    SearchResult,
    clamp_limit,
    empty_result,
    parse_query,
)
from mercato.catalog.search.sql import as_uuid, json_list, statement
from mercato.kit.types import UTCDateTime

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
            for platform in json_list(value):
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
