"""The listing detail's read path: stored documents (one indexed read) under the cache, and
freshness — every change that shows in a detail shows in the very next read, whoever makes
it, with the rendered cache on and with only the stored documents."""

from __future__ import annotations

import asyncio
import importlib.util
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from mercato.app.runtime import Runtime
from mercato.catalog.cache_keys import DETAIL_CACHE_PREFIX
from mercato.config import Settings
from mercato.kit.cache import SingleFlight
from mercato.listing_detail import repository
from mercato.listing_detail import service as detail
from mercato.models import Listing
from tests.catalog.support import V1, Shop
from tests.library.support import grant
from tests.support.actors import Actor, Actors
from tests.support.backends import REDIS_URL
from tests.support.orders import ADDRESS, fund, quiet

MIGRATION = Path(__file__).parents[2] / "src/mercato/migrations/versions/2026_12_07_0013_listing_documents.py"


@pytest.fixture(params=[30.0, 0.0], ids=["cached", "documents"])
def settings(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """The store's defaults (rendered details cached 30 s), and the cache off so every read
    comes from the stored documents."""
    return Settings(data_dir=tmp_path, database_url=database_url, testing=True,
                    secret_key="test-secret-key-of-reasonable-length-0123456789", redis_url=REDIS_URL,
                    redis_namespace=f"mercato-test-{uuid.uuid4().hex[:8]}", catalog_cache_seconds=request.param)


@pytest.fixture
async def shop(client: httpx.AsyncClient, actors: Actors) -> Shop:
    return await Shop.open(client, actors)


async def _detail(client: httpx.AsyncClient, key: str) -> dict[str, Any]:
    response = await client.get(f"{V1}/listings/{key}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _served(client: httpx.AsyncClient, listing: dict[str, Any]) -> dict[str, Any]:
    """Read the detail until it is cached and stored (the first read renders and stores it),
    once the bus has delivered the arrangement's events (their evictions would otherwise
    refresh the cache behind the test's back)."""
    await quiet(client._transport.app.state.runtime)  # type: ignore[attr-defined]
    first = await _detail(client, listing["slug"])
    second = await _detail(client, listing["slug"])
    assert first == second
    return second


async def _stored(runtime: Runtime, key: str) -> repository.StoredDocument | None:
    return await repository.read_document(runtime.db.reader, key)


async def test_the_detail_is_served_from_its_stored_document(shop: Shop, client: httpx.AsyncClient,
                                                             runtime: Runtime) -> None:
    # The sibling first: a cached detail's related listings may lag a sibling's publication by
    # the cache's lifetime (30 s; only the category's stored document is cleared at once).
    other = await shop.published(category="utilities")
    listing = await shop.published(category="utilities")
    rendered = await client.get(f"{V1}/listings/{listing['slug']}")
    document = await _stored(runtime, listing["slug"])
    assert document is not None and document.head is not None and document.items is not None
    again = await client.get(f"{V1}/listings/{listing['id']}")
    assert again.content == rendered.content and again.headers["etag"] == rendered.headers["etag"]
    body = again.json()
    assert [r["slug"] for r in body["related"]] == [other["slug"]], "related: the category's others, not itself"
    assert await detail.from_documents(runtime, listing["id"]) == detail.Detail(
        uuid.UUID(listing["id"]), True, rendered.content, rendered.headers["etag"])


async def test_a_name_or_price_edit_shows_at_once(shop: Shop, client: httpx.AsyncClient) -> None:
    listing = await shop.published()
    await _served(client, listing)
    patched = await client.patch(f"{V1}/listings/{listing['slug']}", headers=shop.developer.headers, json={
        "name": "Renamed", "offers": [{"delivery": "digital", "price": {"amount": 1234, "currency": "USD"}}]})
    assert patched.status_code == 200, patched.text
    body = await _detail(client, listing["slug"])
    assert body["name"] == "Renamed" and body["offers"][0]["price"]["amount"] == 1234


async def test_stock_taken_by_an_order_shows_at_once(shop: Shop, client: httpx.AsyncClient, runtime: Runtime,
                                                     user: Actor) -> None:
    listing = await shop.published(offers=[{"delivery": "physical", "price": {"amount": 500, "currency": "USD"},
                                            "stock": 7}])
    before = await _served(client, listing)
    assert before["offers"][0]["stock"] == 7
    await fund(runtime, user, 10_000)
    ordered = await client.post(f"{V1}/orders", headers={**user.headers, "Idempotency-Key": uuid.uuid4().hex}, json={
        "items": [{"listing_id": listing["id"], "delivery": "physical", "quantity": 2}], "shipping_address": ADDRESS})
    assert ordered.status_code == 201, ordered.text
    assert (await _detail(client, listing["slug"]))["offers"][0]["stock"] == 5


async def test_stock_returned_outside_a_request_shows_at_once(shop: Shop, client: httpx.AsyncClient,
                                                              runtime: Runtime) -> None:
    """A writer in a transaction of its own (a sweep, a bus handler): its evictions apply at commit."""
    from mercato.catalog import service as catalog

    listing = await shop.published(offers=[{"delivery": "physical", "price": {"amount": 500, "currency": "USD"},
                                            "stock": 3}])
    await _served(client, listing)
    async with runtime.db.transaction() as session:
        await catalog.return_stock(session, uuid.UUID(listing["id"]), 4)
    assert (await _detail(client, listing["slug"]))["offers"][0]["stock"] == 7


async def test_a_review_shows_in_rating_and_histogram_at_once(shop: Shop, client: httpx.AsyncClient,
                                                              runtime: Runtime, user: Actor) -> None:
    listing = await shop.published()
    await _served(client, listing)
    await grant(runtime, user, listing["id"])
    reviewed = await client.post(f"{V1}/listings/{listing['slug']}/reviews", headers=user.headers,
                                 json={"rating": 4, "title": "Good", "body": "Works well."})
    assert reviewed.status_code == 201, reviewed.text
    body = await _detail(client, listing["slug"])
    assert body["rating"] == {"average": 4.0, "count": 1} and body["rating_histogram"]["4"] == 1


async def test_a_new_version_and_a_yank_show_at_once(shop: Shop, client: httpx.AsyncClient) -> None:
    listing = await shop.published()
    await _served(client, listing)
    assert (await shop.upload(listing["slug"], "1.1.0")).status_code == 201
    await shop.submit(listing["slug"], "1.1.0")
    await shop.decide(listing["slug"], "1.1.0")
    body = await _detail(client, listing["slug"])
    assert [v["version"] for v in body["versions"]] == ["1.1.0", "1.0.0"]
    assert body["latest_version"]["version"] == "1.1.0"
    yanked = await client.post(f"{V1}/listings/{listing['slug']}/versions/1.1.0/yank",
                               headers=shop.developer.headers, json={"reason": "broken"})
    assert yanked.status_code == 200, yanked.text
    assert [v["version"] for v in (await _detail(client, listing["slug"]))["versions"]] == ["1.0.0"]


async def test_delisting_hides_the_detail_at_once(shop: Shop, client: httpx.AsyncClient) -> None:
    listing = await shop.published()
    await _served(client, listing)
    delisted = await client.post(f"{V1}/listings/{listing['slug']}/delist", headers=shop.developer.headers)
    assert delisted.status_code == 200, delisted.text
    assert (await client.get(f"{V1}/listings/{listing['slug']}")).status_code == 404
    assert (await client.get(f"{V1}/listings/{listing['id']}")).status_code == 404
    relisted = await client.post(f"{V1}/listings/{listing['slug']}/relist", headers=shop.developer.headers)
    assert relisted.status_code == 200
    assert (await _detail(client, listing["slug"]))["status"] == "published"


async def test_the_publisher_badge_and_name_show_at_once(shop: Shop, client: httpx.AsyncClient) -> None:
    listing = await shop.published()
    assert (await _served(client, listing))["publisher"]["verified"] is False
    verified = await client.patch(f"{V1}/publishers/{shop.publisher}", headers=shop.admin.headers,
                                  json={"verified": True, "name": "Verified Maker"})
    assert verified.status_code == 200, verified.text
    assert (await _detail(client, listing["slug"]))["publisher"] == {
        **listing["publisher"], "verified": True, "name": "Verified Maker"}


async def test_a_category_rename_shows_at_once(shop: Shop, client: httpx.AsyncClient) -> None:
    listing = await shop.published(category="utilities")
    await _served(client, listing)
    renamed = await client.patch(f"{V1}/admin/categories/utilities", headers=shop.admin.headers,
                                 json={"name": "Small helpers"})
    assert renamed.status_code == 200, renamed.text
    assert (await _detail(client, listing["slug"]))["category"]["name"] == "Small helpers"


async def test_related_listings_follow_their_changes_in_the_stored_documents(
        shop: Shop, client: httpx.AsyncClient, runtime: Runtime) -> None:
    """A change to another listing of the category clears the category's document (the
    related part); the rendered cache may keep it for catalog_cache_seconds (documented)."""
    listing = await shop.published(category="utilities")
    other = await shop.published(category="utilities")
    await _served(client, listing)
    patched = await client.patch(f"{V1}/listings/{other['slug']}", headers=shop.developer.headers,
                                 json={"name": "Sibling renamed"})
    assert patched.status_code == 200
    assert (await detail.from_documents(runtime, listing["slug"])) is None, "the category's document was cleared"
    await runtime.cache.delete(DETAIL_CACHE_PREFIX + listing["id"])
    assert [r["name"] for r in (await _detail(client, listing["slug"]))["related"]] == ["Sibling renamed"]


async def test_a_rendering_older_than_a_change_is_not_stored(shop: Shop, client: httpx.AsyncClient,
                                                             runtime: Runtime) -> None:
    """Compare-and-set on the generation: a change committed between reading and storing wins."""
    listing = await shop.published()
    async with runtime.db.read_session() as session:
        seen = await repository.document_generation(session, listing["slug"])
    assert seen is not None
    patched = await client.patch(f"{V1}/listings/{listing['slug']}", headers=shop.developer.headers,
                                 json={"summary": "Changed meanwhile"})
    assert patched.status_code == 200
    async with runtime.db.transaction() as session:
        kept = await repository.store_listing_document(session, uuid.UUID(listing["id"]), generation=seen,
                                                       head='{"stale":', category_id=None, built_at_ms=1)
    assert kept is False
    document = await _stored(runtime, listing["slug"])
    assert document is not None and document.head is None
    assert (await _detail(client, listing["slug"]))["summary"] == "Changed meanwhile"


def test_every_listing_column_is_classified_for_the_document_triggers() -> None:
    """A new column of ``listings`` must be either shown (its change clears documents) or a
    counter (lags by the documents' age): the triggers of migration 0013 list them."""
    spec = importlib.util.spec_from_file_location("migration_0012", MIGRATION)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    classified = set(migration.SHOWN_LISTING_COLUMNS) | set(migration.COUNTER_COLUMNS)
    assert classified == {column.name for column in Listing.__table__.columns}


# --- single flight ---------------------------------------------------------------------------------

async def test_single_flight_computes_once_for_concurrent_callers() -> None:
    flight = SingleFlight()
    release = asyncio.Event()
    calls = 0

    async def compute() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return "page"

    waiters = [asyncio.ensure_future(flight.run("k", compute)) for _ in range(20)]
    while calls == 0:  # noqa: ASYNC110 - yield until the first caller's computation has started
        await asyncio.sleep(0)
    waiters[0].cancel()  # the first caller goes away: the others still get the result
    release.set()
    results = await asyncio.gather(*waiters[1:])
    assert calls == 1 and results == ["page"] * 19 and len(flight) == 0


async def test_single_flight_hands_an_error_to_every_waiter_and_forgets_it() -> None:
    flight = SingleFlight()
    release = asyncio.Event()

    async def failing() -> str:
        await release.wait()
        raise LookupError("gone")

    waiters = [asyncio.ensure_future(flight.run("k", failing)) for _ in range(3)]
    await asyncio.sleep(0)
    release.set()
    outcomes = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(o, LookupError) for o in outcomes)

    async def ok() -> str:
        return "again"

    assert await flight.run("k", ok) == "again"
