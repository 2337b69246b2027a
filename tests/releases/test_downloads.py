"""Downloads (C6): entitled callers only, Range, ETag, checksum and signature headers, counting."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from mercato.kit.keys import artifact_message, verify
from tests.catalog.support import V1, Shop, package_bytes
from tests.support.actors import Actor, Actors


@pytest.fixture
async def shop(client: httpx.AsyncClient, actors: Actors) -> Shop:
    return await Shop.open(client, actors)


async def test_a_free_listing_downloads_with_verifiable_checksum_and_signature(
        shop: Shop, client: httpx.AsyncClient, user: Actor) -> None:
    listing = await shop.published()
    url = f"{V1}/listings/{listing['slug']}/versions/1.0.0/download"
    assert (await client.get(url)).status_code == 401
    response = await client.get(url, headers=user.headers)
    assert response.status_code == 200, response.text
    digest = hashlib.sha256(response.content).hexdigest()
    assert response.headers["x-checksum-sha256"] == digest == response.headers["etag"].strip('"')
    assert response.headers["content-length"] == str(len(response.content))
    keys = (await client.get(f"{V1}/keys")).json()
    key = next(k for k in keys["keys"] if k["id"] == response.headers["x-signature-key-id"])
    assert verify(key["public_key"], artifact_message(digest), response.headers["x-signature-ed25519"])
    assert not verify(key["public_key"], artifact_message("0" * 64), response.headers["x-signature-ed25519"])
    library = await client.get(f"{V1}/library", headers=user.headers)
    assert [item["listing"]["slug"] for item in library.json()["items"]] == [listing["slug"]]
    detail = (await client.get(f"{V1}/listings/{listing['slug']}/versions/1.0.0", headers=user.headers)).json()
    assert detail["download_count"] == 1


async def test_range_and_conditional_requests(shop: Shop, client: httpx.AsyncClient, user: Actor) -> None:
    listing = await shop.published()
    url = f"{V1}/listings/{listing['slug']}/versions/1.0.0/download"
    whole = await client.get(url, headers=user.headers)
    size = len(whole.content)
    part = await client.get(url, headers={**user.headers, "Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == whole.content[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{size}"
    tail = await client.get(url, headers={**user.headers, "Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.content == whole.content[-5:]
    outside = await client.get(url, headers={**user.headers, "Range": f"bytes={size + 10}-"})
    assert outside.status_code == 416 and outside.headers["content-range"] == f"bytes */{size}"
    cached = await client.get(url, headers={**user.headers, "If-None-Match": whole.headers["etag"]})
    assert cached.status_code == 304 and cached.content == b""
    stale_if_range = await client.get(url, headers={**user.headers, "Range": "bytes=0-9", "If-Range": '"other"'})
    assert stale_if_range.status_code == 200 and stale_if_range.content == whole.content
    counted = (await client.get(f"{V1}/listings/{listing['slug']}/versions/1.0.0", headers=user.headers)).json()
    # every answer that carried bytes of the archive (whole, two ranges, the failed If-Range); not the 304 or 416
    assert counted["download_count"] == 4


async def entitled_downloads(client: httpx.AsyncClient, user: Actor, slug: str) -> int:
    library = (await client.get(f"{V1}/library", headers=user.headers)).json()["items"]
    return next(item["download_count"] for item in library if item["listing"]["slug"] == slug)


async def test_every_answer_that_hands_out_the_archive_counts_for_the_refund_rule(
        shop: Shop, client: httpx.AsyncClient, user: Actor) -> None:
    """Issue 11 item 3: full bodies behind conditional or range headers were served but not counted."""
    listing = await shop.published()
    url = f"{V1}/listings/{listing['slug']}/versions/1.0.0/download"
    whole = await client.get(url, headers=user.headers)
    assert await entitled_downloads(client, user, listing["slug"]) == 1
    size = len(whole.content)
    bypasses = [
        {"If-None-Match": '"a-stale-tag"'},  # a stale validator: the whole file is sent
        {"Range": f"bytes=-{size}"},  # a suffix range covering the whole file
        {"Range": "bytes=5-", "If-Range": '"a-stale-tag"'},  # a failed If-Range: the whole file is sent
    ]
    for number, extra in enumerate(bypasses, start=2):
        answer = await client.get(url, headers={**user.headers, **extra})
        assert answer.status_code in (200, 206) and answer.content == whole.content, extra
        assert await entitled_downloads(client, user, listing["slug"]) == number, extra
    revalidated = await client.get(url, headers={**user.headers, "If-None-Match": whole.headers["etag"]})
    assert revalidated.status_code == 304
    assert await entitled_downloads(client, user, listing["slug"]) == 4


async def test_a_paid_listing_downloads_only_for_owners(shop: Shop, client: httpx.AsyncClient, user: Actor,
                                                        admin: Actor) -> None:
    listing = await shop.published(offers=[{"delivery": "digital", "price": {"amount": 499, "currency": "USD"}}])
    url = f"{V1}/listings/{listing['slug']}/versions/1.0.0/download"
    refused = await client.get(url, headers=user.headers)
    assert refused.status_code == 403 and refused.json()["code"] == "not_entitled"
    assert (await client.get(url, headers=shop.developer.headers)).status_code == 200  # the publisher's own
    assert (await client.get(url, headers=shop.reviewer.headers)).status_code == 200
    granted = await client.post(f"{V1}/admin/entitlements", headers=admin.headers,
                                json={"user_id": user.id, "listing_id": listing["id"], "reason": "Press copy"})
    assert granted.status_code == 201, granted.text
    assert (await client.get(url, headers=user.headers)).status_code == 200


async def test_unapproved_versions_are_not_downloadable_by_users(shop: Shop, client: httpx.AsyncClient,
                                                                 user: Actor) -> None:
    listing = await shop.published()
    data = package_bytes(listing["slug"], "1.1.0")
    await shop.upload(listing["slug"], "1.1.0", data=data)
    url = f"{V1}/listings/{listing['slug']}/versions/1.1.0/download"
    assert (await client.get(url, headers=user.headers)).status_code == 404
    mine = await client.get(url, headers=shop.developer.headers)
    assert mine.status_code == 200 and "x-signature-ed25519" not in mine.headers
    assert mine.content == data


async def test_a_range_with_a_number_longer_than_python_converts_sends_the_whole_file(
        shop: Shop, client: httpx.AsyncClient, user: Actor) -> None:
    listing = await shop.published()
    url = f"{V1}/listings/{listing['slug']}/versions/1.0.0/download"
    response = await client.get(url, headers={**user.headers, "Range": "bytes=" + "9" * 5000 + "-"})
    assert response.status_code == 200 and response.headers["x-checksum-sha256"] == hashlib.sha256(
        response.content).hexdigest()
