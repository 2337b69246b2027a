"""The admin console's publishers, categories, refunds, events, market sources and roles pages,
and the review console's moderation of user reviews, in-process: a person without the API
route's permission gets the 403 page, a change made through a page is seen through the API,
and a refused input comes back beside its field with nothing changed."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from mercato.app.runtime import Runtime
from mercato.bus import scheduler
from mercato.config import Settings
from mercato.market import handlers  # noqa: F401  (declares the market sweep taken out below)
from tests.library.support import V1, Store, audit_rows
from tests.support.actors import Actor, Actors
from tests.support.pages import as_person, token_of
from tests.support.receivers import FeedServer, feed_server  # noqa: F401
from tests.support.refunds import ask, completed_order, downloaded
from tests.web.browser import Web, person, publisher_of, sign_in

PAGES = ("/console/admin/publishers", "/console/admin/categories", "/console/admin/refunds",
         "/console/admin/events", "/console/admin/market-sources", "/console/admin/roles", "/console/review/reviews")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The market source test's feed server is on 127.0.0.1 (the SSRF allowlist, as in tests/market)."""
    return settings.model_copy(update={"outbound_allowed_hosts": ["127.0.0.1"], "market_timeout_seconds": 3.0})


@pytest.fixture
async def store(client: httpx.AsyncClient, actors: Actors, runtime: Runtime) -> Store:
    return await Store.open(client, actors, runtime)


async def test_the_new_pages_refuse_people_without_the_permission(client: httpx.AsyncClient, actors: Actors,
                                                                  store: Store) -> None:
    plain = await actors.create()
    as_person(client, plain)
    for path in PAGES:
        response = await client.get(path)
        assert response.status_code == 403, path
        assert "Not allowed" in response.text and response.headers["content-type"].startswith("text/html")
    # A reviewer moderates reviews but is no admin; an admin reads roles but does not change them.
    as_person(client, store.reviewer)
    assert (await client.get("/console/review/reviews")).status_code == 200
    assert (await client.get("/console/admin/categories")).status_code == 403
    as_person(client, store.admin)
    for path in PAGES:
        assert (await client.get(path)).status_code == 200, path
    token = await token_of(client, "/console/admin/roles")
    changed = await client.post("/console/admin/roles", data={"csrf_token": token, "name": "helper",
                                                                "perm:user:read": "any"})
    assert changed.status_code == 403
    roles = (await client.get(f"{V1}/admin/roles", headers=store.admin.headers, params={"limit": 100})).json()
    assert "helper" not in [role["name"] for role in roles["items"]]


async def test_an_admin_verifies_a_publisher(client: httpx.AsyncClient, store: Store, runtime: Runtime) -> None:
    as_person(client, store.admin)
    page = await client.get("/console/admin/publishers", params={"q": store.publisher})
    assert f"Verify {store.publisher}" in page.text
    assert store.publisher not in (await client.get("/console/admin/publishers", params={"q": "%"})).text
    token = await token_of(client, "/console/admin/publishers")
    done = await client.post(f"/console/admin/publishers/{store.publisher}/verified",
                             data={"csrf_token": token, "verified": "on"})
    assert done.status_code == 303
    assert (await client.get(f"{V1}/publishers/{store.publisher}")).json()["verified"] is True
    assert [row.after for row in await audit_rows(runtime, "publisher:verify")] == [{"verified": True}]
    again = await client.get(done.headers["location"])
    assert f"Remove the badge of {store.publisher}" in again.text
    missing = await client.post("/console/admin/publishers/no-such-pub/verified",
                                data={"csrf_token": token, "verified": "on"})
    assert missing.status_code == 404 and "alert-error" in missing.text
    off = await client.post(f"/console/admin/publishers/{store.publisher}/verified",
                            data={"csrf_token": token, "verified": "off"})
    assert off.status_code == 303
    assert (await client.get(f"{V1}/publishers/{store.publisher}")).json()["verified"] is False


async def category_slugs(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    items = (await client.get(f"{V1}/categories")).json()["items"]
    return {item["slug"]: item for item in items}


async def test_an_admin_creates_and_edits_a_category_and_bad_input_is_refused(client: httpx.AsyncClient,
                                                                              store: Store) -> None:
    as_person(client, store.admin)
    token = await token_of(client, "/console/admin/categories")
    slug = f"cat-{uuid.uuid4().hex[:6]}"
    form = {"csrf_token": token, "slug": slug, "name": "Field tools", "description": "For the field",
            "position": "7"}
    bad = await client.post("/console/admin/categories", data=form | {"name": "x", "slug": "Not A Slug"})
    assert bad.status_code == 422
    assert 'id="e-name"' in bad.text and 'id="e-slug"' in bad.text and 'value="Not A Slug"' in bad.text
    assert slug not in await category_slugs(client)
    created = await client.post("/console/admin/categories", data=form)
    assert created.status_code == 303
    assert (await category_slugs(client))[slug]["position"] == 7
    taken = await client.post("/console/admin/categories", data=form)
    assert taken.status_code == 409 and "is taken" in taken.text
    edited = await client.post(f"/console/admin/categories/{slug}",
                               data={"csrf_token": token, "name": "Field kit", "description": "", "position": "3"})
    assert edited.status_code == 303
    after = (await category_slugs(client))[slug]
    assert (after["name"], after["position"]) == ("Field kit", 3)
    wrong = await client.post(f"/console/admin/categories/{slug}",
                              data={"csrf_token": token, "name": "Field kit", "description": "", "position": "-2"})
    assert wrong.status_code == 422 and f'id="cpe-{slug}"' in wrong.text
    assert (await category_slugs(client))[slug]["position"] == 3
    deleted = await client.post(f"/console/admin/categories/{slug}/delete", data={"csrf_token": token})
    assert deleted.status_code == 303 and slug not in await category_slugs(client)


async def waiting_refund(client: httpx.AsyncClient, runtime: Runtime, store: Store, actors: Actors,
                         price: int) -> tuple[Actor, str]:
    listing = await store.listing(price=price)
    buyer = await actors.create()
    bought = await completed_order(runtime, buyer, [(listing, price, 1, "digital")])
    await downloaded(runtime, buyer, listing["id"], times=10)  # beyond the automatic policy
    response = await ask(client, buyer, bought)
    assert response.status_code == 201 and response.json()["status"] == "requested", response.text
    return buyer, response.json()["id"]


async def test_an_admin_approves_one_refund_and_rejects_another_with_a_reason(
        client: httpx.AsyncClient, runtime: Runtime, store: Store, actors: Actors) -> None:
    buyer, first = await waiting_refund(client, runtime, store, actors, 1200)
    other_buyer, second = await waiting_refund(client, runtime, store, actors, 700)
    as_person(client, store.admin)
    page = await client.get("/console/admin/refunds")
    assert first in page.text and second in page.text and buyer.email in page.text
    token = await token_of(client, "/console/admin/refunds")
    short = await client.post(f"/console/admin/refunds/{second}/reject", data={"csrf_token": token, "reason": "no"})
    assert short.status_code == 422 and f'id="rre-{second}"' in short.text and 'value="no"' in short.text
    assert (await client.get(f"{V1}/refunds/{second}", headers=other_buyer.headers)).json()["status"] == "requested"
    rejected = await client.post(f"/console/admin/refunds/{second}/reject",
                                 data={"csrf_token": token, "reason": "Used for a month"})
    assert rejected.status_code == 303
    state = (await client.get(f"{V1}/refunds/{second}", headers=other_buyer.headers)).json()
    assert (state["status"], state["decision_reason"]) == ("rejected", "Used for a month")
    approved = await client.post(f"/console/admin/refunds/{first}/approve", data={"csrf_token": token})
    assert approved.status_code == 303
    assert (await client.get(f"{V1}/refunds/{first}", headers=buyer.headers)).json()["status"] in (
        "approved", "completed")
    twice = await client.post(f"/console/admin/refunds/{first}/approve", data={"csrf_token": token})
    assert twice.status_code == 409 and "alert-error" in twice.text
    assert [row.after["status"] for row in await audit_rows(runtime, "refund:approve")] == ["approved"]


async def test_the_event_log_filters_by_type_and_subject_and_pages(client: httpx.AsyncClient, store: Store,
                                                                   runtime: Runtime) -> None:
    as_person(client, store.admin)
    token = await token_of(client, "/console/admin/categories")
    slugs = [f"ev-{uuid.uuid4().hex[:6]}" for _ in range(3)]
    for slug in slugs:
        assert (await client.post("/console/admin/categories", data={
            "csrf_token": token, "slug": slug, "name": slug, "description": "", "position": "1"})).status_code == 303
    api = (await client.get(f"{V1}/admin/events", headers=store.admin.headers,
                            params={"type": "category.changed", "limit": 100})).json()["items"]
    newest = api[0]
    page = await client.get("/console/admin/events", params={"type": "category.changed"})
    assert page.status_code == 200 and "category.changed" in page.text and "publisher.created" not in page.text
    assert page.text.index(slugs[2]) < page.text.index(slugs[0])  # newest first
    one = await client.get("/console/admin/events", params={"subject": newest["subject"]})
    assert slugs[2] in one.text and slugs[1] not in one.text
    older = await client.get("/console/admin/events", params={"type": "category.changed",
                                                               "before": newest["sequence"]})
    assert slugs[2] not in older.text and slugs[1] in older.text
    bad = await client.get("/console/admin/events", params={"before": "yesterday"})
    assert bad.status_code == 422 and "not valid" in bad.text


async def test_market_sources_are_added_refused_synced_and_deleted(
        client: httpx.AsyncClient, store: Store, feed_server: FeedServer,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(scheduler.SWEEPS, "market.sync")  # the test syncs; no background sweep races it
    as_person(client, store.admin)
    token = await token_of(client, "/console/admin/market-sources")
    refused = await client.post("/console/admin/market-sources",
                                data={"csrf_token": token, "name": "Inside", "url": "http://10.0.0.1/"})
    assert refused.status_code == 422 and 'id="e-url"' in refused.text and 'value="Inside"' in refused.text
    assert (await client.get(f"{V1}/admin/sources", headers=store.admin.headers)).json()["items"] == []
    added = await client.post("/console/admin/market-sources",
                              data={"csrf_token": token, "name": "Elsewhere", "url": feed_server.base})
    assert added.status_code == 303, added.text
    [source] = (await client.get(f"{V1}/admin/sources", headers=store.admin.headers)).json()["items"]
    assert (source["name"], source["health"]) == ("Elsewhere", "never")
    page = await client.get("/console/admin/market-sources")
    assert "Sync Elsewhere now" in page.text and "never" in page.text
    synced = await client.post(f"/console/admin/market-sources/{source['id']}/sync", data={"csrf_token": token})
    assert synced.status_code == 303 and feed_server.requests[0].path.startswith("/api/v1/sync/catalog")
    [source] = (await client.get(f"{V1}/admin/sources", headers=store.admin.headers)).json()["items"]
    assert source["health"] == "failing" and source["last_error"]  # the feed server answers 404
    shown = await client.get(synced.headers["location"])
    assert "Synced just now." in shown.text and "failing" in shown.text and "Last error" in shown.text
    deleted = await client.post(f"/console/admin/market-sources/{source['id']}/delete", data={"csrf_token": token})
    assert deleted.status_code == 303
    assert (await client.get(f"{V1}/admin/sources", headers=store.admin.headers)).json()["items"] == []
    gone = await client.post(f"/console/admin/market-sources/{source['id']}/delete", data={"csrf_token": token})
    assert gone.status_code == 404


async def test_a_super_admin_creates_a_role_and_an_unknown_permission_is_refused(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime) -> None:
    root = await actors.create("super_admin")
    as_person(client, root)
    token = await token_of(client, "/console/admin/roles")
    bad = await client.post("/console/admin/roles", data={"csrf_token": token, "name": "Bad Name",
                                                          "perm:user:read": "any"})
    assert bad.status_code == 422 and 'id="e-name"' in bad.text and 'value="Bad Name"' in bad.text
    wrong = await client.post("/console/admin/roles", data={"csrf_token": token, "name": "support",
                                                            "perm:user:read": "sometimes"})
    assert wrong.status_code == 422
    created = await client.post("/console/admin/roles", data={
        "csrf_token": token, "name": "support", "description": "Helps people", "perm:user:read": "any",
        "perm:account:read": "own"})
    assert created.status_code == 303
    roles = {r["name"]: r for r in (await client.get(f"{V1}/admin/roles", headers=root.headers,
                                                     params={"limit": 100})).json()["items"]}
    assert roles["support"]["permissions"] == {"user:read": "any", "account:read": "own"}
    assert roles["support"]["description"] == "Helps people"
    changed = await client.post("/console/admin/roles", data={"csrf_token": token, "name": "support",
                                                              "perm:user:read": "any"})
    assert changed.status_code == 303
    roles = {r["name"]: r for r in (await client.get(f"{V1}/admin/roles", headers=root.headers,
                                                     params={"limit": 100})).json()["items"]}
    assert roles["support"]["permissions"] == {"user:read": "any"}
    locked = await client.post("/console/admin/roles", data={"csrf_token": token, "name": "super_admin",
                                                             "perm:user:read": "any"})
    assert locked.status_code == 409 and "always holds every permission" in locked.text
    assert len(await audit_rows(runtime, "role:update")) == 2


async def test_a_reviewer_hides_and_restores_a_user_review(client: httpx.AsyncClient, store: Store,
                                                           runtime: Runtime) -> None:
    listing = await store.listing(price=0)
    author = await store.owner(listing)
    review = await store.review(listing, author, rating=1, title="Spam spam", body="Buy pills")
    as_person(client, store.reviewer)
    visible = await client.get("/console/review/reviews", params={"view": "visible"})
    assert "Spam spam" in visible.text
    token = await token_of(client, "/console/review/reviews")
    base = f"/console/review/reviews/{listing['id']}/{review['id']}"
    short = await client.post(f"{base}/hide", data={"csrf_token": token, "reason": "x"})
    assert short.status_code == 422 and f'id="hre-{review["id"]}"' in short.text
    public = (await client.get(f"{V1}/listings/{listing['slug']}/reviews")).json()["items"]
    assert [r["id"] for r in public] == [review["id"]]
    hidden = await client.post(f"{base}/hide", data={"csrf_token": token, "reason": "Advertising"})
    assert hidden.status_code == 303
    assert (await client.get(f"{V1}/listings/{listing['slug']}/reviews")).json()["items"] == []
    page = await client.get("/console/review/reviews")
    assert "Spam spam" in page.text and "Hidden: Advertising" in page.text
    again = await client.post(f"{base}/hide", data={"csrf_token": token, "reason": "Advertising"})
    assert again.status_code == 409 and "already hidden" in again.text
    restored = await client.post(f"{base}/restore", data={"csrf_token": token})
    assert restored.status_code == 303
    public = (await client.get(f"{V1}/listings/{listing['slug']}/reviews")).json()["items"]
    assert [r["id"] for r in public] == [review["id"]]
    assert [row.action for row in await audit_rows(runtime, "rating:hide")] == ["rating:hide"]
    assert len(await audit_rows(runtime, "rating:unhide")) == 1


# --- in the browser ---------------------------------------------------------------------------------

async def test_an_admin_walks_the_new_pages_in_the_browser(web: Web, http: httpx.AsyncClient) -> None:
    """Every new page passes the foundation's checks (axe, 390 px, no JavaScript errors); the
    badge and the category made here are seen through the API."""
    root = await person(web, http, "super_admin")
    owner = await person(web, http)
    publisher = await publisher_of(http, root, owner)
    await sign_in(web, root)

    await web.goto(f"/console/admin/publishers?q={publisher}")
    await web.check()
    async with web.page.expect_navigation():
        await web.page.get_by_role("button", name=f"Verify {publisher}").click()
    assert (await http.get(f"{V1}/publishers/{publisher}")).json()["verified"] is True
    await web.check()

    slug = f"kit-{uuid.uuid4().hex[:6]}"
    await web.goto("/console/admin/categories")
    await web.page.get_by_label("Slug").fill("Bad Slug")
    await web.page.get_by_label("Name", exact=True).fill("Field kit")
    await web.page.get_by_role("button", name="Create the category").click()
    await web.page.locator("#e-slug").wait_for()
    await web.check()
    await web.page.get_by_label("Slug").fill(slug)
    async with web.page.expect_navigation():
        await web.page.get_by_role("button", name="Create the category").click()
    categories = (await http.get(f"{V1}/categories")).json()["items"]
    assert slug in [c["slug"] for c in categories]
    await web.check()

    for path in ("/console/admin/refunds", "/console/admin/events?type=category.changed",
                 "/console/admin/market-sources", "/console/admin/roles", "/console/review/reviews",
                 "/console/review/reviews?view=visible"):
        response = await web.goto(path)
        assert response is not None and response.status == 200, path
        await web.check()
    await web.goto("/console/admin/events?type=category.changed")
    assert slug in await web.page.locator("table").inner_text()
