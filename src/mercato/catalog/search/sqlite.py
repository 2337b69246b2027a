"""Listing search on SQLite: FTS5 with bm25, facet counts from the FTS rowids.

Tables (migration 0005):

- ``listing_search``: one row per indexed (published) listing; ``doc_id`` is its FTS rowid,
  ``listing_id`` the listing, ``name_key``/``slug_key`` the exact-match keys, and the folded
  text of each field (the external content of the FTS table).
- ``listing_search_fts``: FTS5 over those fields, ``unicode61 remove_diacritics 2``.
- ``listing_search_facets``: the attribute combinations (``code``) with their counts.

The trick that keeps counts cheap: ``doc_id = code << 32 | n``, so a match's combination is
``rowid >> 32`` — counting a query's matches per facet value needs the FTS doclist only, no
lookup per match. A listing whose attributes change moves to a new ``doc_id``.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.catalog.search.cache import bump_generation
from mercato.catalog.search.cursor import keyset_after
from mercato.catalog.search.flow import Candidate, SqlListingSearch, combination_filters
from mercato.catalog.search.index import DOCUMENT_COLUMNS, FIELDS, Combination, Document, document_from_row
from mercato.catalog.search.query import ParsedQuery, SearchQuery
from mercato.catalog.search.sql import as_uuid, statement

CODE_SHIFT = 32
DIMENSIONS = (("kind", "kind"), ("category", "category_id"), ("free", "free"), ("delivery", "delivery"),
              ("platforms", "platforms"))
_COLUMNS = ", ".join(name for name, _, _ in FIELDS)
_BM25 = "bm25(listing_search_fts, " + ", ".join(str(weight) for _, weight, _ in FIELDS) + ")"


def match_expression(parsed: ParsedQuery) -> str:
    """An FTS5 query that matches every term, each a quoted string (never FTS5 syntax)."""
    quoted = ['"' + term.replace('"', '""') + '"' for term in parsed.terms]
    if parsed.prefix:
        quoted[-1] += "*"
    return " ".join(quoted)


class SQLiteListingSearch(SqlListingSearch):
    # each distinct platform set is checked once, not each combination
    combination_platform = ("c.platforms IN (SELECT d.platforms FROM (SELECT DISTINCT platforms FROM "
                            "listing_search_facets) AS d WHERE EXISTS (SELECT 1 FROM json_each(d.platforms) AS p "
                            "WHERE p.value IN (:platform, 'any')))")
    listing_platform = "EXISTS (SELECT 1 FROM json_each(l.platforms) AS p WHERE p.value IN (:platform, 'any'))"
    relevance_kinds = ("int", "float", "int")  # (not an exact match, bm25, doc_id)

    # search -------------------------------------------------------------------------------------

    def _match_clauses(self, query: SearchQuery, parsed: ParsedQuery, params: dict[str, Any], *,
                       with_combination: bool) -> str:
        params["match"] = match_expression(parsed)
        sql = "listing_search_fts MATCH :match"
        if with_combination:
            clauses, filter_params = combination_filters(query, self.combination_platform)
            if clauses:
                params.update(filter_params)
                sql += (f" AND (rowid >> {CODE_SHIFT}) IN "
                        f"(SELECT c.code FROM listing_search_facets c WHERE {' AND '.join(clauses)})")
        if query.publisher_id is not None:
            params["publisher_id"] = query.publisher_id
            # "+rowid": a filter over the match list; a bare "rowid IN" would make FTS5 re-run the
            # whole MATCH once per listing of the publisher
            sql += " AND +rowid IN (SELECT doc_id FROM listing_search WHERE publisher_id = :publisher_id)"
        return sql

    def facet_sql(self, hits: str | None, clauses: list[str]) -> str:
        if hits is None:  # the stored counts; each GROUP BY reads its own covering index (no sort)
            where = " AND ".join(["c.n > 0", *clauses])
            return " UNION ALL ".join(f"SELECT '{dimension}', c.{column}, SUM(c.n) FROM listing_search_facets c "
                                      f"WHERE {where} GROUP BY c.{column}" for dimension, column in DIMENSIONS)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        return ("WITH m AS MATERIALIZED (SELECT c.kind, c.category_id, c.free, c.delivery, c.platforms, h.n "
                f"FROM ({hits}) AS h CROSS JOIN listing_search_facets c ON c.code = h.code{where}) "
                + " UNION ALL ".join(f"SELECT '{dimension}', m.{column}, SUM(m.n) FROM m GROUP BY m.{column}"
                                     for dimension, column in DIMENSIONS))

    def hits_sql(self, query: SearchQuery, parsed: ParsedQuery | None, params: dict[str, Any]) -> str | None:
        if parsed is not None:
            where = self._match_clauses(query, parsed, params, with_combination=False)
            return (f"SELECT rowid >> {CODE_SHIFT} AS code, COUNT(*) AS n FROM listing_search_fts "
                    f"WHERE {where} GROUP BY 1")
        if query.publisher_id is not None:
            params["publisher_id"] = query.publisher_id
            return (f"SELECT doc_id >> {CODE_SHIFT} AS code, COUNT(*) AS n FROM listing_search "
                    "WHERE publisher_id = :publisher_id GROUP BY 1")
        return None

    async def relevance_candidates(self, session: AsyncSession, query: SearchQuery, parsed: ParsedQuery,
                                   after: list[Any] | None, limit: int) -> list[Candidate]:
        params: dict[str, Any] = {"key": parsed.key, "limit": limit}
        where = self._match_clauses(query, parsed, params, with_combination=True)
        keyset = ""
        if after is not None:
            keyset = "WHERE " + keyset_after(["rest", "score", "doc_id"], descending=False)
            params.update(k0=after[0], k1=after[1], k2=after[2])
        sql = ("WITH r AS MATERIALIZED (SELECT rowid AS doc_id, "
               "CASE WHEN rowid IN (SELECT doc_id FROM listing_search WHERE name_key = :key OR slug_key = :key) "
               f"THEN 0 ELSE 1 END AS rest, {_BM25} AS score FROM listing_search_fts WHERE {where}) "
               f"SELECT doc_id, rest, score FROM r {keyset} ORDER BY rest, score, doc_id LIMIT :limit")
        rows = await session.execute(statement(sql, **params))
        return [(doc_id, [rest, score, doc_id]) for doc_id, rest, score in rows]

    async def published(self, session: AsyncSession, refs: list[Any]) -> dict[Any, uuid.UUID]:
        rows = await session.execute(statement(
            # CROSS JOIN: SQLite keeps this join order (the few candidates first, then their listing)
            "SELECT s.doc_id, s.listing_id FROM listing_search s CROSS JOIN listings l ON l.id = s.listing_id "
            "WHERE s.doc_id IN :refs AND l.status = 'published'", refs=refs))
        return {doc_id: as_uuid(listing_id) for doc_id, listing_id in rows}

    def listings_source(self, query: SearchQuery) -> str:
        # A publisher has few listings: read those and sort them. Without statistics SQLite
        # would walk a sort index over the whole catalogue looking for them.
        if query.publisher_id is not None:
            return "listings l INDEXED BY ix_listings_publisher_id"
        return "listings l"

    def matched_listings_sql(self, query: SearchQuery, parsed: ParsedQuery,
                             params: dict[str, Any]) -> tuple[str, list[str]]:
        where = self._match_clauses(query, parsed, params, with_combination=True)
        return (f"(SELECT rowid AS doc_id FROM listing_search_fts WHERE {where}) AS r "
                "CROSS JOIN listing_search s ON s.doc_id = r.doc_id "
                # one probe by id per match: with a keyset condition SQLite would otherwise pick a
                # sort index and scan a range of listings for every match
                "CROSS JOIN listings l INDEXED BY ix_listings_search_by_id ON l.id = s.listing_id"), []

    # index --------------------------------------------------------------------------------------

    async def reindex(self, session: AsyncSession, listing_id: uuid.UUID) -> None:
        row = (await session.execute(statement(
            f"SELECT {DOCUMENT_COLUMNS} FROM listings l JOIN publishers p ON p.id = l.publisher_id "
            "WHERE l.id = :listing_id", listing_id=listing_id))).first()
        if row is None or row.status != "published":
            await self.remove(session, listing_id)
            return
        document = document_from_row(row)
        old = await self._entry(session, listing_id)
        code = await self._code(session, document.combination)
        values = self._row_values(document)
        if old is not None and old.doc_id >> CODE_SHIFT == code:
            if all(getattr(old, column) == values[column] for column in values if column != "publisher_id") \
                    and as_uuid(old.publisher_id) == document.publisher_id:
                return
            await self._fts_delete(session, old)
            await session.execute(statement(
                "UPDATE listing_search SET " + ", ".join(f"{column} = :{column}" for column in values)
                + " WHERE doc_id = :doc_id", doc_id=old.doc_id, **values))
            await self._fts_insert(session, old.doc_id, values)
            await bump_generation(session)
            return
        if old is not None:
            await self._drop(session, old)
        base = code << CODE_SHIFT
        doc_id = await session.scalar(statement(
            "SELECT COALESCE(MAX(doc_id), :base) + 1 FROM listing_search WHERE doc_id > :base AND doc_id < :top",
            base=base, top=base + (1 << CODE_SHIFT)))
        await session.execute(statement(
            f"INSERT INTO listing_search (doc_id, listing_id, {', '.join(values)}) "
            f"VALUES (:doc_id, :listing_id, {', '.join(':' + column for column in values)})",
            doc_id=doc_id, listing_id=listing_id, **values))
        await self._fts_insert(session, doc_id, values)
        await session.execute(statement("UPDATE listing_search_facets SET n = n + 1 WHERE code = :code", code=code))
        await bump_generation(session)

    async def remove(self, session: AsyncSession, listing_id: uuid.UUID) -> None:
        old = await self._entry(session, listing_id)
        if old is not None:
            await self._drop(session, old)
            await bump_generation(session)

    async def rebuild(self, session: AsyncSession) -> int:
        await session.execute(statement("DELETE FROM listing_search"))
        await session.execute(statement("INSERT INTO listing_search_fts(listing_search_fts) VALUES ('delete-all')"))
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
            code = codes[key]
            counts[code] = counts.get(code, 0) + 1
            batch.append({**self._row_values(document), "doc_id": (code << CODE_SHIFT) | counts[code],
                          "listing_id": document.listing_id.hex, "publisher_id": document.publisher_id.hex})
        if batch:
            columns = list(batch[0])
            await session.execute(statement(
                f"INSERT INTO listing_search ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"),
                batch)
        await session.execute(statement("INSERT INTO listing_search_fts(listing_search_fts) VALUES ('rebuild')"))
        if counts:
            await session.execute(statement("UPDATE listing_search_facets SET n = :n WHERE code = :code"),
                                  [{"code": code, "n": n} for code, n in counts.items()])
        await bump_generation(session)
        return len(batch)

    # helpers ------------------------------------------------------------------------------------

    @staticmethod
    def _row_values(document: Document) -> dict[str, Any]:
        return {"publisher_id": document.publisher_id, "name_key": document.name_key,
                "slug_key": document.slug_key, **{name: document.field_text(name) for name, _, _ in FIELDS}}

    @staticmethod
    async def _entry(session: AsyncSession, listing_id: uuid.UUID) -> Row[Any] | None:
        return (await session.execute(statement(
            f"SELECT doc_id, publisher_id, name_key, slug_key, {_COLUMNS} FROM listing_search "
            "WHERE listing_id = :listing_id", listing_id=listing_id))).first()

    @staticmethod
    async def _code(session: AsyncSession, combination: Combination) -> int:
        code = await session.scalar(statement("SELECT code FROM listing_search_facets WHERE key = :key",
                                              key=combination.key))
        if code is None:
            code = await session.scalar(statement(
                "INSERT INTO listing_search_facets (key, kind, category_id, free, delivery, platforms, n) "
                "VALUES (:key, :kind, :category_id, :free, :delivery, :platforms, 0) RETURNING code",
                key=combination.key, kind=combination.kind, category_id=combination.category_id,
                free=combination.free, delivery=combination.delivery, platforms=combination.platforms_json))
        return int(code)

    @staticmethod
    async def _fts_insert(session: AsyncSession, doc_id: int, values: dict[str, Any]) -> None:
        await session.execute(statement(
            f"INSERT INTO listing_search_fts (rowid, {_COLUMNS}) "
            f"VALUES (:doc_id, {', '.join(':' + name for name, _, _ in FIELDS)})",
            doc_id=doc_id, **{name: values[name] for name, _, _ in FIELDS}))

    @staticmethod
    async def _fts_delete(session: AsyncSession, old: Row[Any]) -> None:
        # External content: FTS5 removes the tokens it is given, so give exactly the stored text.
        await session.execute(statement(
            f"INSERT INTO listing_search_fts (listing_search_fts, rowid, {_COLUMNS}) "
            f"VALUES ('delete', :doc_id, {', '.join(':' + name for name, _, _ in FIELDS)})",
            doc_id=old.doc_id, **{name: getattr(old, name) for name, _, _ in FIELDS}))

    async def _drop(self, session: AsyncSession, old: Row[Any]) -> None:
        await self._fts_delete(session, old)
        await session.execute(statement("DELETE FROM listing_search WHERE doc_id = :doc_id", doc_id=old.doc_id))
        await session.execute(statement("UPDATE listing_search_facets SET n = n - 1 WHERE code = :code",
                                        code=old.doc_id >> CODE_SHIFT))
