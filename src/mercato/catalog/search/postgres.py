"""Listing search on PostgreSQL: a weighted ``tsvector`` with a GIN index, ranked by ``ts_rank_cd``.

Tables (migration 0005): ``listing_search`` (one row per indexed listing: its combination
``code``, publisher, exact-match keys and ``document``) and ``listing_search_facets`` (the
attribute combinations with their counts).

The document and the query are written as ``tsvector``/``tsquery`` literals from the tokens
``query.tokens`` made, not through ``to_tsvector``: no text search configuration, parser or
database locale is involved, so PostgreSQL indexes exactly the words SQLite does (and a user's
``&``, ``!``, ``:*`` or quote is just part of a word that was already split off).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.catalog.search.cache import bump_generation
from mercato.catalog.search.cursor import keyset_after
from mercato.catalog.search.flow import Candidate, SqlListingSearch, combination_filters
from mercato.catalog.search.index import DOCUMENT_COLUMNS, FIELDS, Combination, Document, document_from_row
from mercato.catalog.search.query import ParsedQuery, SearchQuery
from mercato.catalog.search.sql import as_uuid, statement

MAX_POSITION = 16383  # tsvector positions stop there
MAX_POSITIONS_PER_LEXEME = 255
FIELD_GAP = 8  # words of different fields are never "near" each other for ts_rank_cd
# ts_rank_cd weights for labels {D, C, B, A} (FIELDS); normalization 1 divides by 1 + log(length)
_RANK = "ts_rank_cd(CAST('{0.1, 0.3, 0.5, 1.0}' AS float4[]), s.document, CAST(:tsq AS tsquery), 1)"


def _quote(lexeme: str) -> str:
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def tsvector_literal(document: Document) -> str:
    positions: dict[str, list[str]] = {}
    position = 1
    for name, _, label in FIELDS:
        for token in document.fields[name]:
            entries = positions.setdefault(token, [])
            if len(entries) < MAX_POSITIONS_PER_LEXEME:
                entries.append(f"{min(position, MAX_POSITION)}{label}")
            position += 1
        position += FIELD_GAP
    return " ".join(f"{_quote(lexeme)}:{','.join(entries)}" for lexeme, entries in positions.items())


def tsquery_literal(parsed: ParsedQuery) -> str:
    """Every term (AND), the last one as a prefix when the query says so."""
    parts = [_quote(term) for term in parsed.terms]
    if parsed.prefix:
        parts[-1] += ":*"
    return " & ".join(parts)


class PostgresListingSearch(SqlListingSearch):
    combination_platform = ("(c.platforms @> jsonb_build_array(CAST(:platform AS text)) "
                            "OR c.platforms @> CAST('[\"any\"]' AS jsonb))")
    listing_platform = ("(l.platforms @> jsonb_build_array(CAST(:platform AS text)) "
                        "OR l.platforms @> CAST('[\"any\"]' AS jsonb))")
    relevance_kinds = ("int", "float", "id")  # (not an exact match, -ts_rank_cd, listing id)

    # search -------------------------------------------------------------------------------------

    def facet_sql(self, hits: str | None, clauses: list[str]) -> str:
        """One pass, hash-aggregated: one grouping set per facet dimension."""
        if hits is None:
            source, n = "listing_search_facets c WHERE " + " AND ".join(["c.n > 0", *clauses]), "c.n"
        else:
            source = (f"({hits}) AS h JOIN listing_search_facets c ON c.code = h.code"
                      + (" WHERE " + " AND ".join(clauses) if clauses else ""))
            n = "h.n"
        return ("SELECT CASE WHEN GROUPING(c.kind) = 0 THEN 'kind' WHEN GROUPING(c.category_id) = 0 THEN 'category' "
                "WHEN GROUPING(c.free) = 0 THEN 'free' WHEN GROUPING(c.delivery) = 0 THEN 'delivery' "
                "ELSE 'platforms' END, COALESCE(CAST(c.kind AS text), CAST(c.category_id AS text), "
                "CAST(c.free AS text), CAST(c.delivery AS text), CAST(c.platforms AS text)), "
                f"SUM({n}) FROM {source} GROUP BY GROUPING SETS "
                "((c.kind), (c.category_id), (c.free), (c.delivery), (c.platforms))")

    def hits_sql(self, query: SearchQuery, parsed: ParsedQuery | None, params: dict[str, Any]) -> str | None:
        clauses = []
        if parsed is not None:
            params["tsq"] = tsquery_literal(parsed)
            clauses.append("s.document @@ CAST(:tsq AS tsquery)")
        if query.publisher_id is not None:
            params["publisher_id"] = query.publisher_id
            clauses.append("s.publisher_id = :publisher_id")
        if not clauses:
            return None
        return f"SELECT s.code, COUNT(*) AS n FROM listing_search s WHERE {' AND '.join(clauses)} GROUP BY s.code"

    async def relevance_candidates(self, session: AsyncSession, query: SearchQuery, parsed: ParsedQuery,
                                   after: list[Any] | None, limit: int) -> list[Candidate]:
        params: dict[str, Any] = {"key": parsed.key, "tsq": tsquery_literal(parsed), "limit": limit}
        clauses = ["s.document @@ CAST(:tsq AS tsquery)"]
        filters, filter_params = combination_filters(query, self.combination_platform)
        if filters:
            params.update(filter_params)
            clauses.append(f"s.code IN (SELECT c.code FROM listing_search_facets c WHERE {' AND '.join(filters)})")
        if query.publisher_id is not None:
            params["publisher_id"] = query.publisher_id
            clauses.append("s.publisher_id = :publisher_id")
        keyset = ""
        if after is not None:
            keyset = "WHERE " + keyset_after(["rest", "score", "listing_id"], descending=False)
            params.update(k0=after[0], k1=after[1], k2=after[2])
        sql = ("WITH r AS MATERIALIZED (SELECT s.listing_id, "
               "CASE WHEN s.name_key = :key OR s.slug_key = :key THEN 0 ELSE 1 END AS rest, "
               f"-CAST({_RANK} AS float8) AS score FROM listing_search s WHERE {' AND '.join(clauses)}) "
               f"SELECT listing_id, rest, score FROM r {keyset} ORDER BY rest, score, listing_id LIMIT :limit")
        rows = await session.execute(statement(sql, **params))
        return [(as_uuid(listing_id), [rest, score, as_uuid(listing_id)]) for listing_id, rest, score in rows]

    async def published(self, session: AsyncSession, refs: list[Any]) -> dict[Any, uuid.UUID]:
        rows = await session.execute(statement(
            "SELECT l.id FROM listings l WHERE l.id IN :refs AND l.status = 'published'", refs=refs))
        return {as_uuid(listing_id): as_uuid(listing_id) for (listing_id,) in rows}

    def matched_listings_sql(self, query: SearchQuery, parsed: ParsedQuery,
                             params: dict[str, Any]) -> tuple[str, list[str]]:
        params["tsq"] = tsquery_literal(parsed)
        return "listing_search s JOIN listings l ON l.id = s.listing_id", ["s.document @@ CAST(:tsq AS tsquery)"]

    # index --------------------------------------------------------------------------------------

    async def reindex(self, session: AsyncSession, listing_id: uuid.UUID) -> None:
        # Locking the listing row serialises reindexes of one listing (the counts stay exact).
        row = (await session.execute(statement(
            f"SELECT {DOCUMENT_COLUMNS} FROM listings l JOIN publishers p ON p.id = l.publisher_id "
            "WHERE l.id = :listing_id FOR UPDATE OF l", listing_id=listing_id))).first()
        if row is None or row.status != "published":
            await self.remove(session, listing_id)
            return
        document = document_from_row(row)
        old = await session.scalar(statement("SELECT code FROM listing_search WHERE listing_id = :listing_id",
                                             listing_id=listing_id))
        code = await self._code(session, document.combination)
        await session.execute(statement(
            "INSERT INTO listing_search (listing_id, code, publisher_id, name_key, slug_key, document) "
            "VALUES (:listing_id, :code, :publisher_id, :name_key, :slug_key, CAST(:document AS tsvector)) "
            "ON CONFLICT (listing_id) DO UPDATE SET code = excluded.code, publisher_id = excluded.publisher_id, "
            "name_key = excluded.name_key, slug_key = excluded.slug_key, document = excluded.document",
            listing_id=listing_id, code=code, publisher_id=document.publisher_id, name_key=document.name_key,
            slug_key=document.slug_key, document=tsvector_literal(document)))
        if old is None:
            await session.execute(statement("UPDATE listing_search_facets SET n = n + 1 WHERE code = :code",
                                            code=code))
        elif old != code:  # one statement: both rows locked in one order, whoever moves what
            await session.execute(statement(
                "UPDATE listing_search_facets SET n = n + CASE WHEN code = :new THEN 1 ELSE -1 END "
                "WHERE code IN (:old, :new)", old=old, new=code))
        await bump_generation(session)

    async def remove(self, session: AsyncSession, listing_id: uuid.UUID) -> None:
        code = await session.scalar(statement(
            "DELETE FROM listing_search WHERE listing_id = :listing_id RETURNING code", listing_id=listing_id))
        if code is not None:
            await session.execute(statement("UPDATE listing_search_facets SET n = n - 1 WHERE code = :code",
                                            code=code))
            await bump_generation(session)

    async def rebuild(self, session: AsyncSession) -> int:
        await session.execute(statement("DELETE FROM listing_search"))
        await session.execute(statement("UPDATE listing_search_facets SET n = 0"))
        codes = {key: code for key, code in await session.execute(statement(
            "SELECT key, code FROM listing_search_facets"))}
        counts: dict[int, int] = {}
        rows = (await session.execute(statement(
            f"SELECT {DOCUMENT_COLUMNS} FROM listings l JOIN publishers p ON p.id = l.publisher_id "
            "WHERE l.status = 'published'"))).all()
        batch: list[dict[str, Any]] = []
        for row in rows:
            document = document_from_row(row)
            key = document.combination.key
            if key not in codes:
                codes[key] = await self._code(session, document.combination)
            counts[codes[key]] = counts.get(codes[key], 0) + 1
            batch.append({"listing_id": document.listing_id, "code": codes[key], "publisher_id": document.publisher_id,
                          "name_key": document.name_key, "slug_key": document.slug_key,
                          "document": tsvector_literal(document)})
        for start in range(0, len(batch), 5000):
            await session.execute(statement(
                "INSERT INTO listing_search (listing_id, code, publisher_id, name_key, slug_key, document) "
                "VALUES (:listing_id, :code, :publisher_id, :name_key, :slug_key, CAST(:document AS tsvector))"),
                batch[start:start + 5000])
        if counts:
            await session.execute(statement("UPDATE listing_search_facets SET n = :n WHERE code = :code"),
                                  [{"code": code, "n": n} for code, n in counts.items()])
        await bump_generation(session)
        return len(batch)

    @staticmethod
    async def _code(session: AsyncSession, combination: Combination) -> int:
        code = await session.scalar(statement("SELECT code FROM listing_search_facets WHERE key = :key",
                                              key=combination.key))
        if code is None:
            code = await session.scalar(statement(
                "INSERT INTO listing_search_facets (key, kind, category_id, free, delivery, platforms, n) "
                "VALUES (:key, :kind, :category_id, :free, :delivery, CAST(:platforms AS jsonb), 0) "
                "ON CONFLICT (key) DO NOTHING RETURNING code",
                key=combination.key, kind=combination.kind, category_id=combination.category_id,
                free=combination.free, delivery=combination.delivery, platforms=combination.platforms_json))
        if code is None:  # another transaction created it meanwhile
            code = await session.scalar(statement("SELECT code FROM listing_search_facets WHERE key = :key",
                                                  key=combination.key))
        return int(code)
