"""The one place that picks the search adapter for a database dialect."""

from __future__ import annotations

from functools import cache

from mercato.catalog.search.postgres import PostgresListingSearch
from mercato.catalog.search.query import ListingSearch
from mercato.catalog.search.sqlite import SQLiteListingSearch


def listing_search_for(dialect_name: str) -> ListingSearch:
    """The adapter for a database dialect ("sqlite" or "postgresql")."""
    return _adapter(dialect_name)


@cache
def _adapter(dialect_name: str) -> ListingSearch:
    # One adapter per dialect for the process: each keeps its cache of computed answers.
    if dialect_name == "sqlite":
        return SQLiteListingSearch()
    if dialect_name == "postgresql":
        return PostgresListingSearch()
    raise ValueError(f"No listing search for the {dialect_name!r} database dialect.")
