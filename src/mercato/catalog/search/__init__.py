"""Listing search: one port, two adapters, one contract suite.

Two adapters implement :class:`~mercato.catalog.search.query.ListingSearch` (ARCHITECTURE.md
"ports"), one per database: ``sqlite.SQLiteListingSearch`` (FTS5, bm25) and
``postgres.PostgresListingSearch`` (weighted ``tsvector`` + GIN, ``ts_rank_cd``);
``backend.listing_search_for`` makes the one for the database in use, once per store
(``Runtime.search``, built in ``Runtime.from_settings``).
``tests/catalog/test_search.py`` is the contract suite both pass. ``docs/search.md``
explains the design and its numbers (PERF-3).

The modules, each importing only those above it:

- ``query``: the port, the query and result types, and how text is folded and parsed;
- ``sql``: bound statements and the values read back;
- ``cursor``: the listing sorts, keyset conditions and the cursor codec;
- ``index``: what gets indexed of a listing (fields, weights, facet combinations);
- ``cache``: answers already computed, valid per index generation;
- ``flow``: the search flow both adapters share (counts, facets, pages);
- ``sqlite``, ``postgres``: the adapters;
- ``backend``: a new adapter for a database dialect (the runtime's factory).

What both share, so that results agree across databases:

- Text is folded and split in Python (``query.tokens``), not by the database: NFKD, diacritics dropped,
  case folded, split on anything that is not a letter, digit or mark (Unicode categories L,
  N, M, Co). The index stores those tokens; the query is built from the same tokens, quoted,
  so no user input ever reaches FTS5 or tsquery syntax.
- A query matches listings containing every term; the last term also matches as a prefix
  when it has at least ``query.MIN_PREFIX_LENGTH`` characters ("note" finds "notes").
- Relevance: an exact name or slug match first (compared on folded tokens: "cafe notes"
  equals "Café Notes" and "cafe-notes"), then the engine's text score with field weights
  name, slug > tags > summary, publisher > description.
- Facet counts and totals come from one table of attribute combinations
  (``listing_search_facets``: kind, category, free, delivery, platform set → number of
  indexed listings), kept current by :meth:`ListingSearch.reindex`. Counting a query is then
  "count its matches per combination, then sum combinations", never a scan of listings.
"""
