"""The cache keys of a listing's detail and of its page's extras: the catalog evicts them when
a listing changes (repository.evict_details), the listing detail read model
(mercato.listing_detail) and the storefront's listing page fill them."""

from __future__ import annotations

import uuid

DETAIL_CACHE_PREFIX = "listing-detail:"
# What the storefront's listing page shows beside the detail (manifest facts, first reviews),
# for anonymous readers: evicted with the detail, and by every review change (web/storefront.py).
PAGE_CACHE_PREFIX = "listing-page:"


def cache_keys(*listing_ids: uuid.UUID | str) -> list[str]:
    """The cache keys of these listings' details and listing pages' extras."""
    return [prefix + str(listing_id) for listing_id in listing_ids for prefix in (DETAIL_CACHE_PREFIX,
                                                                                   PAGE_CACHE_PREFIX)]
