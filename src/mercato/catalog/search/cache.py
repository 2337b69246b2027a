"""Answers already computed (counts, first relevance pages), valid while the index
generation is unchanged; the generation itself, read and bumped."""

from __future__ import annotations

import secrets
from collections import OrderedDict
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.catalog.search.sql import statement


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
