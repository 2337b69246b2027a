"""Market sources (O6) through the admin API, against a scripted stand-in for another store."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from mercato.app.runtime import Runtime
from mercato.kit.clock import utcnow
from mercato.market import sweep
from mercato.models import AuditEntry, MarketSource
from tests.support.actors import Actor
from tests.support.receivers import FeedServer

V1 = "/api/v1"
SOURCES = f"{V1}/admin/sources"  # the contract path (API.md)
OLD_SOURCES = f"{V1}/admin/market-sources"  # the first path, kept as an alias


def remote(name: str, **extra: Any) -> dict[str, Any]:
    listing_id = str(uuid.uuid4())
    listing = {"id": listing_id, "slug": name.lower().replace(" ", "-"), "name": name, "kind": "app", **extra}
    return {"id": listing_id, "hash": uuid.uuid4().hex, "deleted": False, "listing": listing}


def page(*changes: dict[str, Any], cursor: str = "c1", reset: bool = False, more: bool = False) -> dict[str, Any]:
    return {"changes": list(changes), "cursor": cursor, "reset": reset, "more": more}


async def add(client: httpx.AsyncClient, admin: Actor, url: str, name: str = "Other Store") -> dict[str, Any]:
    response = await client.post(SOURCES, headers=admin.headers, json={"name": name, "url": url})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def sync(client: httpx.AsyncClient, admin: Actor, source_id: str) -> dict[str, Any]:
    response = await client.post(f"{SOURCES}/{source_id}/sync", headers=admin.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def browse(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(f"{V1}/market/listings", params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


async def test_an_admin_adds_a_source_which_is_audited_and_not_synced_yet(
        client: httpx.AsyncClient, admin: Actor, runtime: Runtime, feed_server: FeedServer) -> None:
    source = await add(client, admin, f"{feed_server.base}/")
    assert source["url"] == feed_server.base  # the trailing slash is dropped
    assert (source["health"], source["failure_count"], source["listing_count"]) == ("never", 0, 0)
    listed = (await client.get(SOURCES, headers=admin.headers)).json()
    assert listed["next_cursor"] is None
    assert [s["id"] for s in listed["items"]] == [source["id"]]
    assert (await client.get(OLD_SOURCES, headers=admin.headers)).json() == listed
    async with runtime.db.read_session() as session:
        entry = await session.scalar(select(AuditEntry).where(AuditEntry.action == "market_source:create"))
    assert entry is not None and entry.resource_id == source["id"]
    again = await client.post(SOURCES, headers=admin.headers, json={"name": "Twice", "url": feed_server.base})
    assert again.status_code == 409 and again.json()["code"] == "market_source_exists"


@pytest.mark.parametrize("url", ["ftp://store.example.org", "http://169.254.169.254", "http://10.1.2.3:8080",
                                 "not a url", "http://127.0.0.1:9/?q=1", "http://user:pw@127.0.0.1:9"])
async def test_urls_the_guard_refuses_are_422_and_nothing_is_added(
        client: httpx.AsyncClient, admin: Actor, runtime: Runtime, url: str) -> None:
    response = await client.post(SOURCES, headers=admin.headers, json={"name": "Bad", "url": url})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "url_not_allowed"
    async with runtime.db.read_session() as session:
        assert await session.scalar(select(MarketSource.id)) is None


async def test_a_sync_mirrors_the_feed_labelled_with_its_source_and_read_only(
        client: httpx.AsyncClient, admin: Actor, feed_server: FeedServer) -> None:
    source = await add(client, admin, feed_server.base)
    alpha, beta = remote("Alpha Tool", summary="first"), remote("Beta Game")
    feed_server.answer(200, page(alpha, reset=True, more=True, cursor="c1"))
    feed_server.answer(200, page(beta, cursor="c2"), etag='"e2"')
    result = await sync(client, admin, source["id"])
    assert (result["health"], result["pages"], result["upserted"], result["listing_count"]) == ("ok", 2, 2, 2)
    assert [r.path for r in feed_server.requests] == ["/api/v1/sync/catalog", "/api/v1/sync/catalog?cursor=c1"]

    items = await browse(client)
    assert {i["name"] for i in items} == {"Alpha Tool", "Beta Game"}
    first = next(i for i in items if i["remote_id"] == alpha["id"])
    assert first["source"] == {"id": source["id"], "name": "Other Store", "url": feed_server.base}
    assert first["source_link"] == f"{feed_server.base}/listings/alpha-tool"
    assert first["read_only"] is True and first["listing"]["summary"] == "first"
    assert [i["name"] for i in await browse(client, q="beta")] == ["Beta Game"]
    assert await browse(client, source=str(uuid.uuid4())) == []
    detail = await client.get(f"{V1}/market/listings/{first['id']}")
    assert detail.status_code == 200 and detail.json()["remote_id"] == alpha["id"]


async def test_an_unchanged_feed_answers_304_and_a_delta_updates_and_removes(
        client: httpx.AsyncClient, admin: Actor, feed_server: FeedServer) -> None:
    source = await add(client, admin, feed_server.base)
    alpha, beta, gamma = remote("Alpha"), remote("Beta"), remote("Gamma")
    feed_server.answer(200, page(alpha, beta, gamma, reset=True, cursor="c1"))
    await sync(client, admin, source["id"])
    feed_server.answer(200, page(cursor="c1"), etag='"head"')  # at the head: same cursor, nothing changed
    assert (await sync(client, admin, source["id"]))["pages"] == 1
    feed_server.answer(304)
    unchanged = await sync(client, admin, source["id"])
    assert (unchanged["pages"], unchanged["upserted"], unchanged["health"]) == (0, 0, "ok")
    assert feed_server.requests[-1].headers.get("if-none-match") == '"head"'

    renamed = {**alpha, "hash": "f" * 32, "listing": {**alpha["listing"], "name": "Alpha Two"}}
    same = dict(beta)  # the same hash: nothing to change
    feed_server.answer(200, page(renamed, same, {"id": gamma["id"], "hash": None, "deleted": True, "listing": None},
                                 cursor="c2"))
    delta = await sync(client, admin, source["id"])
    assert (delta["upserted"], delta["removed"], delta["listing_count"]) == (1, 1, 2)
    assert feed_server.requests[-1].path == "/api/v1/sync/catalog?cursor=c1"
    assert feed_server.requests[-1].headers.get("if-none-match") == '"head"'  # still the cursor it was for
    feed_server.answer(200, page(cursor="c2"))
    assert (await sync(client, admin, source["id"]))["upserted"] == 0
    assert feed_server.requests[-1].path == "/api/v1/sync/catalog?cursor=c2"
    assert "if-none-match" not in feed_server.requests[-1].headers  # the cursor moved: the ETag is no longer its
    assert sorted(i["name"] for i in await browse(client)) == ["Alpha Two", "Beta"]


@pytest.mark.parametrize(("status", "body", "error"), [
    (200, b"{not json", "not JSON"),
    (200, {"changes": [{"id": "x"}], "cursor": "c"}, "not a sync page"),
    (200, {"changes": [{"id": str(uuid.uuid4()), "hash": "ab", "deleted": False, "listing": None}],
           "cursor": "c", "reset": False}, "not a sync page"),
    (500, b"boom", "HTTP 500"),
    (302, b"", "HTTP 302"),
], ids=["bad-json", "bad-shape", "listing-missing", "server-error", "redirect"])
async def test_a_failing_source_counts_failures_keeps_its_listings_and_backs_off(
        client: httpx.AsyncClient, admin: Actor, runtime: Runtime, feed_server: FeedServer,
        status: int, body: Any, error: str) -> None:
    source = await add(client, admin, feed_server.base)
    feed_server.answer(200, page(remote("Kept"), reset=True))
    await sync(client, admin, source["id"])
    feed_server.answer(status, body)
    failed = await sync(client, admin, source["id"])
    assert (failed["health"], failed["failure_count"], failed["listing_count"]) == ("failing", 1, 1)
    assert error in failed["last_error"]
    assert [i["name"] for i in await browse(client)] == ["Kept"]

    interval = runtime.settings.market_sync_interval_seconds
    at = utcnow()
    assert await sweep.sync_due(runtime.db, runtime.settings, now=at + timedelta(seconds=interval)) == []  # 2×
    retried = await sweep.sync_due(runtime.db, runtime.settings, now=at + timedelta(seconds=2 * interval + 1))
    assert [(r.ok, r.source_id) for r in retried] == [(False, uuid.UUID(source["id"]))]  # 404 from the script
    listed = (await client.get(SOURCES, headers=admin.headers)).json()["items"][0]
    assert listed["failure_count"] == 2 and listed["last_error"].startswith("FeedError: HTTP 404")

    feed_server.answer(304)
    recovered = await sync(client, admin, source["id"])
    assert (recovered["health"], recovered["failure_count"], recovered["last_error"]) == ("ok", 0, None)


async def test_an_answer_larger_than_the_limit_fails_the_sync(
        client: httpx.AsyncClient, admin: Actor, runtime: Runtime, feed_server: FeedServer) -> None:
    runtime.settings.market_max_response_bytes = 2048
    source = await add(client, admin, feed_server.base)
    feed_server.answer(200, page(*[remote(f"App {n}") for n in range(40)], reset=True))
    failed = await sync(client, admin, source["id"])
    assert failed["health"] == "failing" and "larger than 2048 bytes" in failed["last_error"]
    assert failed["listing_count"] == 0


def test_backoff_doubles_per_failure_up_to_an_hour() -> None:
    at = utcnow()
    assert sweep.next_due(None, 0, 60) is None
    assert sweep.next_due(at, 0, 60) == at + timedelta(seconds=60)
    assert sweep.next_due(at, 3, 60) == at + timedelta(seconds=480)
    assert sweep.next_due(at, 12, 60) == at + timedelta(hours=1)


async def test_deleting_a_source_hides_its_listings(client: httpx.AsyncClient, admin: Actor,
                                                     feed_server: FeedServer) -> None:
    source = await add(client, admin, feed_server.base)
    feed_server.answer(200, page(remote("Soon Gone"), reset=True))
    await sync(client, admin, source["id"])
    listing_id = (await browse(client))[0]["id"]
    assert (await client.delete(f"{SOURCES}/{source['id']}", headers=admin.headers)).status_code == 204
    assert await browse(client) == []
    gone = await client.get(f"{V1}/market/listings/{listing_id}")
    assert gone.status_code == 404 and gone.json()["code"] == "mirrored_listing_not_found"
    missing = await client.post(f"{SOURCES}/{source['id']}/sync", headers=admin.headers)
    assert missing.status_code == 404 and missing.json()["code"] == "market_source_not_found"


async def test_only_admins_manage_sources(client: httpx.AsyncClient, user: Actor) -> None:
    response = await client.post(SOURCES, headers=user.headers, json={"name": "X", "url": "https://example.org"})
    assert response.status_code == 403


async def test_sources_are_paged_at_the_contract_path(client: httpx.AsyncClient, admin: Actor,
                                                      feed_server: FeedServer) -> None:
    added = [await add(client, admin, f"{feed_server.base}/store-{n}") for n in range(3)]
    first = (await client.get(SOURCES, headers=admin.headers, params={"limit": 2})).json()
    assert [s["id"] for s in first["items"]] == [added[0]["id"], added[1]["id"]] and first["next_cursor"]
    rest = (await client.get(SOURCES, headers=admin.headers,
                             params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert [s["id"] for s in rest["items"]] == [added[2]["id"]] and rest["next_cursor"] is None
    forged = await client.get(SOURCES, headers=admin.headers, params={"cursor": "W3RydWVd"})  # [true]
    assert forged.status_code == 422 and forged.json()["code"] == "invalid_cursor"
    removed = await client.delete(f"{SOURCES}/{added[0]['id']}", headers=admin.headers)
    assert removed.status_code == 204
    assert (await client.delete(f"{OLD_SOURCES}/{added[0]['id']}", headers=admin.headers)).status_code == 404


async def test_a_sources_feed_is_untrusted_input(client: httpx.AsyncClient, admin: Actor,
                                                feed_server: FeedServer) -> None:
    """Issue 11 item 5: the source's HTML, javascript: URLs and slug were passed through as they came."""
    source = await add(client, admin, feed_server.base)
    hostile = remote("Hostile Tool", description="Hello <script>alert(1)</script> [x](javascript:alert(2))",
                     description_html="<script>alert(document.cookie)</script>", homepage="javascript:alert(3)",
                     icon_url="JavaScript:alert(4)", screenshots=["data:text/html,<script>", "https://ok.example/s.png"])
    feed_server.answer(200, page(hostile, reset=True))
    assert (await sync(client, admin, source["id"]))["upserted"] == 1
    [item] = await browse(client)
    listing = item["listing"]
    assert "<script" not in listing["description_html"] and 'href="javascript' not in listing["description_html"]
    assert "&lt;script&gt;" in listing["description_html"]
    assert (listing["homepage"], listing["icon_url"]) == (None, None)
    assert listing["screenshots"] == ["https://ok.example/s.png"]

    bad_slug = remote("Other")
    bad_slug["listing"]["slug"] = "x/../../evil?<b>"
    feed_server.answer(200, page(bad_slug, cursor="c2"))
    failed = await sync(client, admin, source["id"])
    assert failed["health"] == "failing" and failed["listing_count"] == 1
    assert [i["slug"] for i in await browse(client)] == ["hostile-tool"]
