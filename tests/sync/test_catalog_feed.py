"""The catalog change feed (S1): snapshots, deltas with hashes, tombstones, 304, reset, diff."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest

from mercato.app.runtime import Runtime
from mercato.catalog import presenter
from mercato.catalog import service as catalog
from mercato.kit.clock import utcnow
from mercato.sync import catalog_feed
from mercato.sync.handlers import reconcile
from tests.support.actors import Actors
from tests.support.orders import Seller
from tests.sync.support import V1, feed, published, settle


@pytest.fixture
async def seller(client: httpx.AsyncClient, actors: Actors, runtime: Runtime) -> Seller:
    return await Seller.open(client, actors, runtime)


async def test_a_first_sync_is_a_snapshot_with_the_hash_of_each_listings_public_json(
        client: httpx.AsyncClient, seller: Seller, runtime: Runtime) -> None:
    listings = [await published(seller, name=f"App {n}") for n in range(3)]
    draft = await seller.client.post(f"{V1}/listings", headers=seller.developer.headers, json={
        "publisher": seller.slug, "slug": f"draft-{uuid.uuid4().hex[:8]}", "name": "Draft", "kind": "app",
        "offers": [{"delivery": "digital", "price": {"amount": 0, "currency": "USD"}}]})
    assert draft.status_code == 201

    snapshot = await feed(client)
    assert snapshot["reset"] is True and snapshot["more"] is False
    assert [c["id"] for c in snapshot["changes"]] == [item["id"] for item in listings]
    async with runtime.db.read_session() as session:
        shown = await presenter.present(session, [await catalog.get_by_id(session, uuid.UUID(listings[0]["id"]))])
    first = snapshot["changes"][0]
    assert first["hash"] == catalog_feed.content_hash(shown[0]) and first["deleted"] is False
    assert first["listing"]["name"] == "App 0" and first["listing"]["status"] == "published"


async def test_a_delta_carries_only_the_latest_change_of_each_changed_listing(
        client: httpx.AsyncClient, seller: Seller, runtime: Runtime) -> None:
    edited, untouched = await published(seller, name="Before"), await published(seller)
    start = await feed(client)
    old_hash = next(c["hash"] for c in start["changes"] if c["id"] == edited["id"])
    for name in ("Middle", "After"):
        response = await client.patch(f"{V1}/listings/{edited['id']}", headers=seller.developer.headers,
                                      json={"name": name})
        assert response.status_code == 200, response.text
    await settle(runtime)

    delta = await feed(client, start["cursor"])
    assert delta["reset"] is False
    assert [c["id"] for c in delta["changes"]] == [edited["id"]]
    assert delta["changes"][0]["listing"]["name"] == "After" and delta["changes"][0]["hash"] != old_hash
    assert untouched["id"] not in {c["id"] for c in delta["changes"]}
    assert (await feed(client, delta["cursor"]))["changes"] == []


async def test_a_delisted_listing_becomes_a_tombstone_and_a_relisted_one_comes_back(
        client: httpx.AsyncClient, seller: Seller, runtime: Runtime) -> None:
    listing = await published(seller)
    start = await feed(client)
    assert (await client.post(f"{V1}/listings/{listing['id']}/delist", headers=seller.developer.headers)
            ).status_code == 200
    await settle(runtime)
    gone = await feed(client, start["cursor"])
    assert gone["changes"] == [{"id": listing["id"], "hash": None, "deleted": True, "listing": None}]
    assert (await feed(client))["changes"] == []  # a snapshot holds no tombstones

    assert (await client.post(f"{V1}/listings/{listing['id']}/relist", headers=seller.developer.headers)
            ).status_code == 200
    await settle(runtime)
    back = await feed(client, gone["cursor"])
    assert [(c["id"], c["deleted"]) for c in back["changes"]] == [(listing["id"], False)]


async def test_an_unchanged_poll_is_answered_304_until_something_changes(
        client: httpx.AsyncClient, seller: Seller, runtime: Runtime) -> None:
    listing = await published(seller)
    cursor = (await feed(client))["cursor"]
    first = await client.get(f"{V1}/sync/catalog", params={"cursor": cursor})
    assert first.status_code == 200 and first.json()["changes"] == []
    etag = first.headers["etag"]
    assert await runtime.cache.get(catalog_feed.HEAD_CACHE_KEY) is not None  # the head is remembered
    for _ in range(2):  # the second answer comes from the cached head, before routing
        again = await client.get(f"{V1}/sync/catalog", params={"cursor": cursor}, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.headers["etag"] == etag and again.content == b""

    assert (await client.patch(f"{V1}/listings/{listing['id']}", headers=seller.developer.headers,
                               json={"summary": "Now with more sync"})).status_code == 200
    await settle(runtime)
    assert await runtime.cache.get(catalog_feed.HEAD_CACHE_KEY) is None  # the recorded change evicted it
    changed = await client.get(f"{V1}/sync/catalog", params={"cursor": cursor}, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert [c["listing"]["summary"] for c in changed.json()["changes"]] == ["Now with more sync"]


async def test_a_cursor_older_than_the_purged_tombstones_gets_a_reset_snapshot(
        client: httpx.AsyncClient, seller: Seller, runtime: Runtime) -> None:
    kept, removed = await published(seller), await published(seller)
    old_cursor = (await feed(client))["cursor"]
    assert (await client.post(f"{V1}/listings/{removed['id']}/delist", headers=seller.developer.headers)
            ).status_code == 200
    await settle(runtime)
    recent_cursor = (await feed(client, old_cursor))["cursor"]
    async with runtime.db.transaction() as session:
        assert await catalog_feed.purge(session, retention_days=30, now=utcnow() + timedelta(days=31)) > 0

    stale = await feed(client, old_cursor)
    assert stale["reset"] is True and [c["id"] for c in stale["changes"]] == [kept["id"]]
    fresh = await feed(client, recent_cursor)
    assert fresh["reset"] is False and fresh["changes"] == []


async def test_tombstones_within_the_retention_period_are_kept(client: httpx.AsyncClient, seller: Seller,
                                                                runtime: Runtime) -> None:
    listing = await published(seller)
    cursor = (await feed(client))["cursor"]
    await client.post(f"{V1}/listings/{listing['id']}/delist", headers=seller.developer.headers)
    await settle(runtime)
    async with runtime.db.transaction() as session:
        assert await catalog_feed.purge(session, retention_days=30, now=utcnow() + timedelta(days=29)) == 0
    assert [c["deleted"] for c in (await feed(client, cursor))["changes"]] == [True]


async def test_snapshots_and_deltas_page_with_more(client: httpx.AsyncClient, seller: Seller) -> None:
    listings = [await published(seller) for _ in range(3)]
    first = await feed(client, limit=2)
    assert first["reset"] is True and first["more"] is True and len(first["changes"]) == 2
    rest = await feed(client, first["cursor"], limit=2)
    assert rest["reset"] is False and rest["more"] is False
    assert [c["id"] for c in first["changes"] + rest["changes"]] == [item["id"] for item in listings]


async def test_the_diff_names_what_differs_from_the_held_hashes(client: httpx.AsyncClient, seller: Seller,
                                                                 runtime: Runtime) -> None:
    same, stale, unknown_to_client = [await published(seller) for _ in range(3)]
    hashes = {c["id"]: c["hash"] for c in (await feed(client))["changes"]}
    gone = str(uuid.uuid4())
    held = {same["id"]: hashes[same["id"]], stale["id"]: "0" * 32, gone: "f" * 32}
    response = await client.post(f"{V1}/sync/catalog/diff", json={"hashes": held})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [c["id"] for c in body["changed"]] == [stale["id"]]
    assert body["changed"][0]["hash"] == hashes[stale["id"]]
    assert [c["id"] for c in body["new"]] == [unknown_to_client["id"]]
    assert body["deleted"] == [gone] and body["complete"] is True
    assert (await feed(client, body["cursor"]))["changes"] == []


@pytest.mark.parametrize("cursor", ["not base64 json!", "WzEsMF0", "eyJhIjoxfQ", "Wy0xLC0xXQ"],
                         ids=["garbage", "floor-below-seq", "not-a-list", "negative"])
async def test_a_cursor_the_feed_did_not_give_is_refused(client: httpx.AsyncClient, cursor: str) -> None:
    response = await client.get(f"{V1}/sync/catalog", params={"cursor": cursor})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_cursor"


async def test_a_bad_diff_body_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{V1}/sync/catalog/diff", json={"hashes": {"not-a-uuid": "abc"}})
    assert response.status_code == 422 and response.json()["code"] == "validation_failed"


async def test_the_reconcile_sweep_fills_the_feed_and_tombstones_what_left(
        client: httpx.AsyncClient, seller: Seller, runtime: Runtime) -> None:
    silent = await seller.listing(digital=0)  # published without an event: only the sweep sees it
    recorded = await published(seller)
    async with runtime.db.transaction() as session:
        from mercato.catalog import repository as catalog_repository

        assert await catalog_repository.transition(session, uuid.UUID(recorded["id"]), from_=("published",),
                                                   to="delisted", at=utcnow())
    await reconcile(runtime)
    changes = {c["id"]: c["deleted"] for c in (await feed(client, "WzAsMF0"))["changes"]}
    assert changes == {silent["id"]: False, recorded["id"]: True}


async def test_renaming_the_publisher_changes_its_listings(client: httpx.AsyncClient, seller: Seller,
                                                             runtime: Runtime) -> None:
    listing = await published(seller)
    cursor = (await feed(client))["cursor"]
    response = await client.patch(f"{V1}/publishers/{seller.slug}", headers=seller.developer.headers,
                                  json={"name": "Renamed Publisher"})
    assert response.status_code == 200, response.text
    await settle(runtime)
    [change] = (await feed(client, cursor))["changes"]
    assert change["id"] == listing["id"] and change["listing"]["publisher"]["name"] == "Renamed Publisher"
