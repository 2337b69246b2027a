"""Storefront pages in-process: the listing page over the API's detail, reviews written
through the page (owners only, once), unknown things as 404 pages, and a server error as the
500 page while the API keeps problem JSON."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from mercato.app.runtime import Runtime
from mercato.library import service as library
from mercato.web import csrf, pages, storefront
from tests.catalog.support import Shop
from tests.support.actors import Actors
from tests.support.orders import quiet
from tests.support.pages import TOKEN, sign_in

V1 = "/api/v1"


async def test_an_owner_reviews_a_listing_on_its_page_and_a_non_owner_is_told_why_not(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime) -> None:
    shop = await Shop.open(client, actors)
    listing = await shop.published(name="Review Me", description="# Heading\n\n<script>alert(1)</script> **bold**")
    page = await client.get(f"/listings/{listing['slug']}")
    assert page.status_code == 200
    assert "<strong>bold</strong>" in page.text and "<script>alert(1)</script>" not in page.text  # sanitized
    assert "1.0.0" in page.text and "Get for free" in page.text

    stranger = await actors.create()
    await sign_in(client, stranger.email)
    form = await client.get(f"/listings/{listing['slug']}")
    token = TOKEN.search(form.text).group(1)  # type: ignore[union-attr]
    refused = await client.post(f"/listings/{listing['slug']}/reviews", data={
        "rating": "4", "title": "Nice", "body": "Liked it", "csrf_token": token})
    assert refused.status_code == 422 and "Only owners review" in refused.text
    assert 'value="Nice"' in refused.text  # the input kept

    async with runtime.db.transaction() as session:
        await library.grant(session, user_id=uuid.UUID(stranger.id), listing_id=uuid.UUID(listing["id"]),
                            source="admin")
    posted = await client.post(f"/listings/{listing['slug']}/reviews", data={
        "rating": "4", "title": "Nice", "body": "Liked *it*", "csrf_token": token})
    assert posted.status_code == 303
    reviews = (await client.get(f"{V1}/listings/{listing['slug']}/reviews")).json()["items"]
    assert [(r["rating"], r["title"]) for r in reviews] == [(4, "Nice")]
    shown = await client.get(f"/listings/{listing['slug']}")
    assert "<em>it</em>" in shown.text and "Write a review" not in shown.text  # once


@pytest.mark.parametrize("path", ["/listings/no-such-listing", "/publishers/no-such-publisher",
                                  "/categories/no-such-category"])
async def test_unknown_things_are_404_pages(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404 and response.headers["content-type"].startswith("text/html")
    assert 'class="site-header"' in response.text


async def test_generated_artwork_is_plain_svg_drawn_from_the_slug(client: httpx.AsyncClient) -> None:
    shots = [await client.get(f"/screenshots/chess-club/{n}.svg") for n in (1, 2, 3)]
    for shot in shots:
        assert shot.status_code == 200 and shot.headers["content-type"] == "image/svg+xml"
        assert shot.text.startswith("<svg") and "Chess Club" in shot.text
        assert "<script" not in shot.text and "href" not in shot.text  # nothing runs, nothing is fetched
    assert len({shot.text for shot in shots}) == 3  # three different layouts
    other = await client.get("/screenshots/tune-deck/1.svg")
    assert other.text != shots[0].text  # colours and name follow the slug
    icon = await client.get("/icons/chess-club.svg")
    assert icon.status_code == 200 and ">CC</text>" in icon.text
    for bad in ("/screenshots/chess-club/4.svg", "/screenshots/chess-club/0.svg", "/screenshots/Chess/1.svg"):
        assert (await client.get(bad)).status_code in (404, 422), bad


async def test_bad_search_parameters_are_a_422_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/search", params={"kind": "spaceship"})
    assert response.status_code == 422 and response.headers["content-type"].startswith("text/html")
    assert "kind" in response.text


async def test_a_server_error_is_the_500_page_and_the_api_keeps_problem_json(
        app, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the categories broke")

    monkeypatch.setattr(storefront.catalog, "categories", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://mercato.test") as http:
        page = await http.get("/")
        api = await http.get(f"{V1}/categories")
    assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")
    assert "Something went wrong" in page.text and "the categories broke" not in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert api.status_code == 500 and api.headers["content-type"] == "application/problem+json"


async def test_a_chosen_filter_lists_its_alternatives_with_the_api_s_counts(
        client: httpx.AsyncClient, runtime: Runtime) -> None:
    """The chosen groups' counts (facet_counts: counts only) equal what GET /listings answers
    with that filter left out and the others kept."""
    from mercato.demo import load_demo

    await load_demo(runtime)
    page = await client.get("/search", params={"kind": "app", "price": "free"})
    assert page.status_code == 200
    shown = {(m.group(1), int(m.group(2))) for m in re.finditer(
        r'<span>(?:✓ )?([^<]+)</span> <span class="count">(\d+)</span>', page.text)}
    kinds = (await client.get(f"{V1}/listings", params={"price": "free"})).json()["facets"]["kind"]
    prices = (await client.get(f"{V1}/listings", params={"kind": "app"})).json()["facets"]["price"]
    names = {"app": "Apps", "plugin": "Plugins", "game": "Games", "free": "Free", "paid": "Paid"}
    expected = {(names[k], n) for k, n in {**kinds, **prices}.items() if n}
    assert len(kinds) > 1 and len(prices) > 1 and expected <= shown


async def test_anonymous_listing_pages_show_every_review_change_at_once(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime) -> None:
    """The extras beside the cached detail (first reviews, manifest facts) are cached for
    anonymous readers: a review's text edit, a reply and a deletion (the first two leave the
    detail's ETag as it was) show on the next page all the same."""
    from mercato.catalog.cache_keys import PAGE_CACHE_PREFIX

    shop = await Shop.open(client, actors)
    listing = await shop.published(name="Cached Extras")
    owner = await actors.create()
    async with runtime.db.transaction() as session:
        await library.grant(session, user_id=uuid.UUID(owner.id), listing_id=uuid.UUID(listing["id"]), source="admin")
    reviews = f"{V1}/listings/{listing['slug']}/reviews"
    review = (await client.post(reviews, headers=owner.headers,
                                json={"rating": 4, "title": "First words", "body": "Plain"})).json()
    page = f"/listings/{listing['slug']}"
    assert "First words" in (await client.get(page)).text
    assert await runtime.cache.get(PAGE_CACHE_PREFIX + listing["id"]) is not None  # cached for the next reader
    assert "First words" in (await client.get(page)).text  # from the cache

    edited = await client.patch(f"{reviews}/{review['id']}", headers=owner.headers, json={"title": "Second words"})
    assert edited.status_code == 200, edited.text
    shown = (await client.get(page)).text
    assert "Second words" in shown and "First words" not in shown

    replied = await client.post(f"{reviews}/{review['id']}/reply", headers=shop.developer.headers,
                                json={"body": "Thanks for *that*"})
    assert replied.status_code == 200, replied.text
    assert "Thanks for <em>that</em>" in (await client.get(page)).text

    deleted = await client.delete(f"{reviews}/{review['id']}", headers=owner.headers)
    assert deleted.status_code == 204, deleted.text
    shown = (await client.get(page)).text
    assert "Second words" not in shown and "No reviews yet." in shown


def _hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', page)
    assert found, f"no {name} in the page"
    return found.group(1)


async def test_anonymous_readers_share_one_rendered_listing_page_with_their_own_token_and_key(
        client: httpx.AsyncClient, actors: Actors, monkeypatch: pytest.MonkeyPatch) -> None:
    """An anonymous reader's listing page is rendered once per detail and extras and shared by
    every anonymous reader, each still getting the CSRF token of its own cookie (which its form
    then passes) and a fresh idempotency key; a signed-in reader's page is rendered for them."""
    shop = await Shop.open(client, actors)
    listing = await shop.published(name="Shared Page")
    page = f"/listings/{listing['slug']}"
    renders: list[str] = []
    get_template = pages.templates.get_template
    monkeypatch.setattr(pages.templates, "get_template",
                        lambda name, *a, **k: renders.append(name) or get_template(name, *a, **k))

    client.cookies.clear()
    first = await client.get(page)
    again = await client.get(page)
    client.cookies.clear()
    other = await client.get(page)
    assert renders == ["store/listing.html"]  # one render for the three answers
    for answer in (first, again, other):
        assert answer.status_code == 200 and "Shared Page" in answer.text
        assert pages.CSRF_STAND_IN not in answer.text and pages.ONCE_STAND_IN not in answer.text
    tokens = [_hidden(answer.text, "csrf_token") for answer in (first, again, other)]
    assert tokens[0] == tokens[1] != tokens[2]  # bound to each browser's cookie
    assert len({_hidden(answer.text, "idempotency_key") for answer in (first, again, other)}) == 3
    get = f"{page}/get"
    form = {"listing_id": listing["id"], "idempotency_key": _hidden(other.text, "idempotency_key")}
    assert (await client.post(get, data={**form, "csrf_token": tokens[2]})).status_code != 403  # the token works
    assert (await client.post(get, data={**form, "csrf_token": tokens[0]})).status_code == 403  # another's does not
    assert client.cookies.get(csrf.COOKIE)

    reader = await actors.create()
    await sign_in(client, reader.email)
    mine = await client.get(page)
    assert mine.status_code == 200 and "Sign out" in mine.text and renders[-1] == "store/listing.html"
    assert len(renders) > 1  # rendered for the signed-in reader, not taken from the shared page


async def test_an_anonymous_listing_page_rendered_already_is_answered_before_routing_until_it_changes(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared listing page is answered by the request middleware (kit/http FastPath) without
    the route, with the page's security headers and a new browser's CSRF cookie; an edit of the
    listing shows at once, and a signed-in reader or a query takes the route."""
    shop = await Shop.open(client, actors)
    listing = await shop.published(name="Fast Page")
    await quiet(runtime)  # the arrangement's evictions delivered before the page is cached
    page = f"/listings/{listing['slug']}"
    routed: list[str] = []
    route = storefront._listing
    monkeypatch.setattr(storefront, "_listing", lambda request, *a, **k: routed.append(request.url.path)
                        or route(request, *a, **k))

    client.cookies.clear()
    assert (await client.get(page)).status_code == 200 and routed == [page]
    client.cookies.clear()
    fast = await client.get(page)
    assert routed == [page]  # not routed
    assert fast.status_code == 200 and "Fast Page" in fast.text and pages.CSRF_STAND_IN not in fast.text
    assert "script-src 'self'" in fast.headers["content-security-policy"]
    assert fast.headers["x-content-type-options"] == "nosniff" and fast.headers["x-request-id"]
    assert csrf.COOKIE in fast.headers["set-cookie"] and "httponly" in fast.headers["set-cookie"].lower()
    form = {"listing_id": listing["id"], "idempotency_key": _hidden(fast.text, "idempotency_key"),
            "csrf_token": _hidden(fast.text, "csrf_token")}
    assert (await client.post(f"{page}/get", data=form)).status_code != 403  # its token is this browser's

    patched = await client.patch(f"{V1}/listings/{listing['slug']}", headers=shop.developer.headers,
                                 json={"name": "Fast Page Renamed"})
    assert patched.status_code == 200, patched.text
    await quiet(runtime)
    client.cookies.clear()
    renamed = await client.get(page)
    assert "Fast Page Renamed" in renamed.text and routed == [page, page]  # the change shows at once
    await client.get(f"{page}?tab=reviews")
    reader = await actors.create()
    await sign_in(client, reader.email)
    assert "Sign out" in (await client.get(page)).text
    assert routed == [page] * 4


async def test_anonymous_readers_share_a_rendered_search_page_until_its_results_change(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    shop = await Shop.open(client, actors)
    word = f"zq{uuid.uuid4().hex[:8]}"
    await shop.published(name=f"First {word}")
    await quiet(runtime)  # no index change from the arrangement between the two reads
    renders: list[str] = []
    get_template = pages.templates.get_template
    monkeypatch.setattr(pages.templates, "get_template",
                        lambda name, *a, **k: renders.append(name) or get_template(name, *a, **k))
    client.cookies.clear()
    first = await client.get("/search", params={"q": word})
    client.cookies.clear()
    again = await client.get("/search", params={"q": word})
    assert renders == ["store/search.html"] and first.text.count(f"First {word}") == again.text.count(f"First {word}")
    assert f'value="{word}"' in again.text  # the header's search box keeps the query
    assert pages.CSRF_STAND_IN not in again.text and pages.ONCE_STAND_IN not in again.text
    sorted_by_price = await client.get("/search", params={"q": word, "sort": "price"})
    assert sorted_by_price.status_code == 200 and len(renders) == 2  # other parameters, another page

    await shop.published(name=f"Second {word}")
    changed = await client.get("/search", params={"q": word})
    assert f"Second {word}" in changed.text and len(renders) == 3


async def test_a_page_s_searches_read_the_index_generation_once_and_a_bump_forgets_it(runtime: Runtime) -> None:
    from mercato.catalog.search.cache import GENERATION_MEMO, bump_generation, read_generation_once
    from mercato.catalog.search.query import SearchQuery

    search = runtime.search
    async with runtime.db.read_session() as session:
        await search.search(session, SearchQuery())
        assert GENERATION_MEMO not in session.info  # only when the request opts in
        read_generation_once(session)
        await search.search(session, SearchQuery())
        generation = session.info[GENERATION_MEMO]["generation"]
        assert isinstance(generation, int)
        full = await search.search(session, SearchQuery(kind="app", sort="popular"))
        assert session.info[GENERATION_MEMO]["generation"] == generation
        counts = await search.search(session, SearchQuery(kind="app", sort="popular", items=False))
        assert (counts.ids, counts.next_cursor) == ([], None)  # counts only: no page looked up
        assert (counts.total, counts.facets) == (full.total, full.facets)
    async with runtime.db.transaction() as session:
        read_generation_once(session)
        await search.search(session, SearchQuery())
        await bump_generation(session)
        assert GENERATION_MEMO not in session.info  # the next search reads the new generation
