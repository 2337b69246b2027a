"""Arranging listings in the catalog feed for the sync tests."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from mercato.app.runtime import Runtime
from mercato.sync import catalog_feed
from tests.support.orders import Seller, quiet

V1 = "/api/v1"


async def published(seller: Seller, **offer: Any) -> dict[str, Any]:
    """A published listing in the feed: created and published (the catalog's guarded
    transition, as review approval does), then recorded as ``listing.published`` has it."""
    listing = await seller.listing(digital=offer.get("digital", 0), name=offer.get("name", "Synced App"))
    async with seller.runtime.db.transaction() as session:
        await catalog_feed.record_listing(session, uuid.UUID(listing["id"]))
    return listing


async def feed(client: httpx.AsyncClient, cursor: str | None = None, **params: Any) -> dict[str, Any]:
    response = await client.get(f"{V1}/sync/catalog", params={**({"cursor": cursor} if cursor else {}), **params})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def settle(runtime: Runtime) -> None:
    await quiet(runtime)
