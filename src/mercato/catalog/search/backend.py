"""The one place that picks the search adapter for a database dialect.

The store's runtime holds the adapter it searches with (``Runtime.search``, built once with
this factory in ``Runtime.from_settings``): it keeps the answers it computed, so it lives as
long as the runtime. A new adapter starts with an empty cache."""

from __future__ import annotations

from mercato.catalog.search.postgres import PostgresListingSearch
from mercato.catalog.search.query import ListingSearch
from mercato.catalog.search.sqlite import SQLiteListingSearch


def listing_search_for(dialect_name: str) -> ListingSearch:
    """A new adapter for a database dialect ("sqlite" or "postgresql")."""
    if dialect_name == "sqlite":
        return SQLiteListingSearch()
    if dialect_name == "postgresql":
        return PostgresListingSearch()
    raise ValueError(f"No listing search for the {dialect_name!r} database dialect.")
