"""Listings: drafts stay private, the state machine, metadata edits, detail with ETag and
cache eviction, batch, categories."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from tests.catalog.support import V1, Shop, new_slug
from tests.support.actors import Actor, Actors


@pytest.fixture
async def shop(client: httpx.AsyncClient, actors: Actors) -> Shop:
    return await Shop.open(client, actors)


async def eventually(check: Any, timeout: float = 10.0) -> Any:
    """Poll ``check`` (an async callable returning a truthy value when done)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.05)


async def test_a_draft_is_visible_only_to_its_publisher(shop: Shop, client: httpx.AsyncClient, user: Actor) -> None:
    listing = await shop.listing(name="Hello Notes", tags=["notes", "sync"], category="productivity")
    assert listing["status"] == "draft" and listing["category"]["slug"] == "productivity"
    assert (await client.get(f"{V1}/listings/{listing['slug']}")).status_code == 404
    assert (await client.get(f"{V1}/listings/{listing['id']}", headers=user.headers)).status_code == 404
    own = await client.get(f"{V1}/listings/{listing['slug']}", headers=shop.developer.headers)
    assert own.status_code == 200 and own.json()["name"] == "Hello Notes"
    public_list = await client.get(f"{V1}/publishers/{shop.publisher}/listings")
    assert public_list.json()["items"] == []
    members_list = await client.get(f"{V1}/publishers/{shop.publisher}/listings", headers=shop.developer.headers)
    assert [item["slug"] for item in members_list.json()["items"]] == [listing["slug"]]


async def test_listing_creation_is_validated(shop: Shop, client: httpx.AsyncClient, actors: Actors) -> None:
    taken = await shop.listing()
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"slug": taken["slug"]}, 409, "slug_taken"),
        ({"category": "no-such-category"}, 422, "unknown_category"),
        ({"offers": [{"delivery": "digital", "price": {"amount": 100, "currency": "EUR"}}]}, 422, "invalid_offer"),
        ({"offers": [{"delivery": "digital", "price": {"amount": 1, "currency": "USD"}},
                     {"delivery": "digital", "price": {"amount": 2, "currency": "USD"}}]}, 422, "invalid_offer"),
        ({"offers": [{"delivery": "digital", "price": {"amount": -1, "currency": "USD"}}]}, 422, "validation_failed"),
        ({"status": "published"}, 422, "validation_failed"),
        ({"kind": "widget"}, 422, "validation_failed"),
    ]
    for overrides, status, code in cases:
        body = {"publisher": shop.publisher, "slug": new_slug(), "name": "X listing", "kind": "app", **overrides}
        response = await client.post(f"{V1}/listings", headers=shop.developer.headers, json=body)
        assert (response.status_code, response.json()["code"]) == (status, code), (overrides, response.text)
    stranger = await actors.create()
    other_publisher = await actors.publisher(stranger)
    response = await client.post(f"{V1}/listings", headers=shop.developer.headers, json={
        "publisher": other_publisher["slug"], "slug": new_slug(), "name": "Not mine", "kind": "app"})
    assert response.status_code == 403
    mine = await client.get(f"{V1}/publishers/{shop.publisher}/listings", headers=shop.developer.headers)
    assert [item["slug"] for item in mine.json()["items"]] == [taken["slug"]]


@pytest.mark.parametrize("field", ["icon_url", "screenshots"])
async def test_images_are_https_urls_or_the_store_s_own_artwork(shop: Shop, client: httpx.AsyncClient,
                                                               field: str) -> None:
    def value(url: str) -> Any:
        return [url] if field == "screenshots" else url

    for url in ("https://img.example.org/a.png", "/screenshots/hello-notes/2.svg", "/icons/hello-notes.svg"):
        body = {"publisher": shop.publisher, "slug": new_slug(), "name": "X listing", "kind": "app", field: value(url)}
        response = await client.post(f"{V1}/listings", headers=shop.developer.headers, json=body)
        assert response.status_code == 201 and response.json()[field] == value(url), (url, response.text)
    for url in ("/api/v1/me", "//evil.example/a.png", "javascript:alert(1)", "/screenshots/hello-notes/2.svg?x=1",
                "/screenshots/../api/v1/me.svg", "data:image/svg+xml,<svg/>"):
        body = {"publisher": shop.publisher, "slug": new_slug(), "name": "X listing", "kind": "app", field: value(url)}
        response = await client.post(f"{V1}/listings", headers=shop.developer.headers, json=body)
        assert (response.status_code, response.json()["code"]) == (422, "validation_failed"), url


async def test_offers_map_to_delivery_and_price(shop: Shop) -> None:
    both = await shop.listing(offers=[{"delivery": "digital", "price": {"amount": 999, "currency": "USD"}},
                                      {"delivery": "physical", "price": {"amount": 2999, "currency": "USD"},
                                       "stock": 10}])
    assert both["delivery"] == "both" and not both["free"]
    assert {o["delivery"]: o["price"]["amount"] for o in both["offers"]} == {"digital": 999, "physical": 2999}
    free = await shop.listing()
    assert free["free"] and free["offers"] == [{"delivery": "digital", "price": {"amount": 0, "currency": "USD"},
                                                "stock": None}]


async def test_publishing_flow_and_public_detail(shop: Shop, client: httpx.AsyncClient) -> None:
    listing = await shop.published(category="utilities", description="# Title\n<script>x</script>")
    assert listing["status"] == "published" and listing["latest_version"]["version"] == "1.0.0"
    detail = await client.get(f"{V1}/listings/{listing['slug']}")
    assert detail.status_code == 200
    body = detail.json()
    assert [v["version"] for v in body["versions"]] == ["1.0.0"]
    assert "<script>" not in body["description_html"] and "&lt;script&gt;" in body["description_html"]
    assert body["rating_histogram"] == {"1": 0, "2": 0, "3": 0, "4": 0, "5": 0}
    etag = detail.headers["etag"]
    again = await client.get(f"{V1}/listings/{listing['id']}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.headers["etag"] == etag


async def test_an_edit_evicts_the_cached_detail(shop: Shop, client: httpx.AsyncClient) -> None:
    listing = await shop.published()
    first = await client.get(f"{V1}/listings/{listing['slug']}")
    patched = await client.patch(f"{V1}/listings/{listing['slug']}", headers=shop.developer.headers,
                                 json={"summary": "Now with more things."})
    assert patched.status_code == 200 and patched.json()["revision"] > listing["revision"]

    async def fresh() -> bool:
        response = await client.get(f"{V1}/listings/{listing['slug']}")
        return (response.json()["summary"] == "Now with more things."
                and response.headers["etag"] != first.headers["etag"])

    assert await eventually(fresh)


async def test_slug_cannot_change_and_strangers_cannot_edit(shop: Shop, client: httpx.AsyncClient,
                                                            actors: Actors) -> None:
    listing = await shop.listing()
    renamed = await client.patch(f"{V1}/listings/{listing['id']}", headers=shop.developer.headers,
                                 json={"slug": "another"})
    assert renamed.status_code == 422
    outsider = await actors.create()
    await actors.publisher(outsider)
    outsider = await actors.login(outsider.email, outsider.password, user_id=outsider.id)
    response = await client.patch(f"{V1}/listings/{listing['id']}", headers=outsider.headers, json={"name": "Mine"})
    assert response.status_code == 404  # a draft of another publisher does not exist for them
    published = await shop.published()
    response = await client.patch(f"{V1}/listings/{published['id']}", headers=outsider.headers, json={"name": "Mine"})
    assert response.status_code == 403


async def test_delist_relist_and_suspension(shop: Shop, client: httpx.AsyncClient, user: Actor) -> None:
    listing = await shop.published()
    delisted = await client.post(f"{V1}/listings/{listing['slug']}/delist", headers=shop.developer.headers)
    assert delisted.status_code == 200 and delisted.json()["status"] == "delisted"
    assert (await client.post(f"{V1}/listings/{listing['slug']}/delist",
                              headers=shop.developer.headers)).json()["code"] == "invalid_transition"
    assert (await client.get(f"{V1}/listings/{listing['id']}", headers=user.headers)).status_code == 404
    relisted = await client.post(f"{V1}/listings/{listing['slug']}/relist", headers=shop.developer.headers)
    assert relisted.json()["status"] == "published"

    suspend = await client.post(f"{V1}/admin/listings/{listing['id']}/suspend", headers=shop.admin.headers,
                                json={"reason": "Malware reported"})
    assert suspend.status_code == 200 and suspend.json()["status"] == "suspended"
    assert (await client.post(f"{V1}/admin/listings/{listing['id']}/suspend", headers=shop.developer.headers,
                              json={"reason": "nope"})).status_code == 403
    assert (await client.get(f"{V1}/listings/{listing['id']}", headers=user.headers)).status_code == 404
    edit = await client.patch(f"{V1}/listings/{listing['id']}", headers=shop.developer.headers, json={"name": "Sneaky"})
    assert edit.status_code == 409
    back = await client.post(f"{V1}/admin/listings/{listing['id']}/unsuspend", headers=shop.admin.headers)
    assert back.json()["status"] == "published"
    audit = await client.get(f"{V1}/admin/audit", headers=shop.admin.headers,
                             params={"resource": f"listing:{listing['id']}"})
    actions = [row["action"] for row in audit.json()["items"]]
    assert {"listing:delist", "listing:relist", "listing:suspend", "listing:unsuspend"} <= set(actions)


async def test_admins_suspend_and_unsuspend_by_slug(shop: Shop, client: httpx.AsyncClient, user: Actor) -> None:
    listing = await shop.published()
    suspend = await client.post(f"{V1}/admin/listings/{listing['slug']}/suspend", headers=shop.admin.headers,
                                json={"reason": "Malware reported"})
    assert suspend.status_code == 200 and suspend.json()["status"] == "suspended", suspend.text
    assert (await client.get(f"{V1}/listings/{listing['slug']}", headers=user.headers)).status_code == 404
    back = await client.post(f"{V1}/admin/listings/{listing['slug']}/unsuspend", headers=shop.admin.headers)
    assert back.status_code == 200 and back.json()["status"] == "published"
    missing = await client.post(f"{V1}/admin/listings/no-such-listing/suspend", headers=shop.admin.headers,
                                json={"reason": "Malware reported"})
    assert missing.status_code == 404 and missing.json()["code"] == "listing_not_found"


async def test_batch_returns_visible_listings_and_names_the_rest(shop: Shop, client: httpx.AsyncClient) -> None:
    one, two = await shop.published(), await shop.published()
    draft = await shop.listing()
    unknown = str(uuid.uuid4())
    response = await client.post(f"{V1}/listings/batch", json={"ids": [two["id"], draft["id"], one["id"], unknown]})
    assert response.status_code == 200
    assert [item["id"] for item in response.json()["items"]] == [two["id"], one["id"]]
    assert set(response.json()["missing"]) == {draft["id"], unknown}
    by_slug = await client.post(f"{V1}/listings/batch", json={"slugs": [one["slug"]]})
    assert [item["slug"] for item in by_slug.json()["items"]] == [one["slug"]]
    too_many = await client.post(f"{V1}/listings/batch", json={"ids": [str(uuid.uuid4()) for _ in range(101)]})
    assert too_many.status_code == 422
    both = await client.post(f"{V1}/listings/batch", json={"ids": [], "slugs": []})
    assert both.status_code == 422


async def test_categories_are_seeded_and_admin_managed(client: httpx.AsyncClient, admin: Actor, user: Actor,
                                                       shop: Shop) -> None:
    seeded = (await client.get(f"{V1}/categories")).json()
    assert {"productivity", "games", "developer-tools"} <= {c["slug"] for c in seeded["items"]}
    assert seeded["next_cursor"] is None
    created = await client.post(f"{V1}/admin/categories", headers=admin.headers,
                                json={"slug": "science", "name": "Science"})
    assert created.status_code == 201
    assert (await client.post(f"{V1}/admin/categories", headers=admin.headers,
                              json={"slug": "science", "name": "Again"})).status_code == 409
    assert (await client.post(f"{V1}/admin/categories", headers=user.headers,
                              json={"slug": "x-cat", "name": "Nope"})).status_code == 403
    renamed = await client.patch(f"{V1}/admin/categories/science", headers=admin.headers, json={"name": "Sciences"})
    assert renamed.json()["name"] == "Sciences"
    await shop.listing(category="science")
    in_use = await client.delete(f"{V1}/admin/categories/science", headers=admin.headers)
    assert in_use.status_code == 409 and in_use.json()["code"] == "category_in_use"
    assert (await client.delete(f"{V1}/admin/categories/media", headers=admin.headers)).status_code == 204
    assert "media" not in {c["slug"] for c in (await client.get(f"{V1}/categories")).json()["items"]}
