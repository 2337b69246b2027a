"""The search port (:class:`ListingSearch`), what a search asks and answers, and how text is
folded and split into terms, the same for indexed documents and queries."""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass
from functools import cache
from typing import Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

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


def empty_result() -> SearchResult:
    return SearchResult(ids=[], next_cursor=None, total=0,
                        facets={"kind": {}, "category": {}, "price": {}, "delivery": {}, "platform": {}})


def clamp_limit(limit: int) -> int:
    return max(1, min(int(limit), MAX_LIMIT))


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
