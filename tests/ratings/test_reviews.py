"""C5: ratings and written reviews — only owners review, once; authors edit and delete;
publishers reply; moderators hide; the listing's counters stay exact."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from typing import Any

import httpx
import pytest

from mercato.app.runtime import Runtime
from tests.library.support import V1, Store, audit_rows, events, grant, listing_row
from tests.support.actors import Actor, Actors


@pytest.fixture
async def store(client: httpx.AsyncClient, actors: Actors, runtime: Runtime) -> Store:
    return await Store.open(client, actors, runtime)


@pytest.fixture
async def listing(store: Store) -> dict[str, Any]:
    return await store.listing(price=999)


def reviews_url(listing: dict[str, Any], review_id: str | None = None, suffix: str = "") -> str:
    base = f"{V1}/listings/{listing['slug']}/reviews"
    return f"{base}/{review_id}{suffix}" if review_id else base


async def counters(runtime: Runtime, listing: dict[str, Any]) -> tuple[int, int, float]:
    row = await listing_row(runtime, listing["id"])
    return row.rating_count, row.rating_sum, row.rating_average


async def listed(client: httpx.AsyncClient, listing: dict[str, Any], viewer: Actor | None = None,
                 **params: object) -> list[dict[str, Any]]:
    response = await client.get(reviews_url(listing), headers=viewer.headers if viewer else {}, params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


# --- writing -------------------------------------------------------------------------------------

async def test_only_owners_review_and_the_average_follows(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, user: Actor, listing: dict[str, Any]) -> None:
    refused = await client.post(reviews_url(listing), headers=user.headers, json={"rating": 5})
    assert (refused.status_code, refused.json()["code"]) == (403, "not_entitled")
    await grant(runtime, user, listing["id"])
    response = await client.post(reviews_url(listing), headers=user.headers,
                                 json={"rating": 4, "title": "Solid", "body": "Does what it says."})
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["rating"], body["title"], body["mine"], body["hidden"]) == (4, "Solid", True, False)
    assert body["body_html"] == "<p>Does what it says.</p>\n"
    second = await store.owner(listing)
    await store.review(listing, second, rating=1)
    assert await counters(runtime, listing) == (2, 5, 2.5)
    created = await events(runtime, "rating.created")
    assert [(e.data["user_id"], e.data["rating"]) for e in created] == [(user.id, 4), (second.id, 1)]


async def test_a_second_review_of_one_listing_is_refused(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, listing: dict[str, Any]) -> None:
    owner = await store.owner(listing)
    await store.review(listing, owner, rating=5)
    again = await client.post(reviews_url(listing), headers=owner.headers, json={"rating": 1})
    assert (again.status_code, again.json()["code"]) == (409, "review_exists")
    assert await counters(runtime, listing) == (1, 5, 5.0)


async def test_concurrent_first_reviews_by_one_user_make_one(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, listing: dict[str, Any]) -> None:
    owner = await store.owner(listing)
    responses = await asyncio.gather(*(client.post(reviews_url(listing), headers=owner.headers,
                                                   json={"rating": 3}) for _ in range(5)))
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409, 409]
    assert await counters(runtime, listing) == (1, 3, 3.0)


async def test_twenty_concurrent_reviews_keep_the_count_and_sum_exact(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, listing: dict[str, Any]) -> None:
    owners = [await store.owner(listing) for _ in range(20)]
    ratings = [1 + n % 5 for n in range(20)]
    responses = await asyncio.gather(*(client.post(reviews_url(listing), headers=owner.headers,
                                                   json={"rating": rating})
                                       for owner, rating in zip(owners, ratings, strict=True)))
    assert [r.status_code for r in responses] == [201] * 20, [r.text for r in responses if r.status_code != 201]
    assert await counters(runtime, listing) == (20, sum(ratings), round(sum(ratings) / 20, 2))


async def test_publishers_do_not_review_their_own_listings(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, listing: dict[str, Any]) -> None:
    await grant(runtime, store.member, listing["id"])
    response = await client.post(reviews_url(listing), headers=store.member.headers, json={"rating": 5})
    assert (response.status_code, response.json()["code"]) == (403, "own_listing")
    assert await counters(runtime, listing) == (0, 0, 0.0)


async def test_reviews_are_found_by_listing_id_or_slug_and_only_on_visible_listings(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, user: Actor, listing: dict[str, Any]) -> None:
    owner = await store.owner(listing)
    await store.review(listing, owner)
    by_id = await client.get(f"{V1}/listings/{listing['id']}/reviews")
    assert [r["rating"] for r in by_id.json()["items"]] == [4]
    assert (await client.get(f"{V1}/listings/no-such-listing/reviews")).status_code == 404
    draft = await store.listing(published=False)
    await grant(runtime, user, draft["id"])
    for response in (await client.get(reviews_url(draft), headers=user.headers),
                     await client.post(reviews_url(draft), headers=user.headers, json={"rating": 5})):
        assert (response.status_code, response.json()["code"]) == (404, "listing_not_found")
    assert (await client.get(reviews_url(draft), headers=store.developer.headers)).status_code == 200


@pytest.mark.parametrize("body", [
    {"rating": 0}, {"rating": 6}, {"rating": "five"}, {}, {"rating": 4, "title": "x" * 121},
    # A4: nobody sets who wrote it, whether it is hidden, or the publisher's reply
    {"rating": 4, "user_id": str(uuid.uuid4())}, {"rating": 4, "hidden": False}, {"rating": 4, "reply": "Thanks"},
])
async def test_invalid_or_extra_review_fields_are_refused(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, listing: dict[str, Any],
        body: dict[str, Any]) -> None:
    owner = await store.owner(listing)
    response = await client.post(reviews_url(listing), headers=owner.headers, json=body)
    assert response.status_code == 422, response.text
    assert await counters(runtime, listing) == (0, 0, 0.0)


async def test_writing_needs_a_signed_in_caller(client: httpx.AsyncClient, listing: dict[str, Any]) -> None:
    review_id = uuid.uuid4()
    for method, url, body in (("POST", reviews_url(listing), {"rating": 5}),
                              ("PATCH", reviews_url(listing, str(review_id)), {"rating": 5}),
                              ("DELETE", reviews_url(listing, str(review_id)), None),
                              ("POST", reviews_url(listing, str(review_id), "/reply"), {"body": "Hi"}),
                              ("POST", reviews_url(listing, str(review_id), "/hide"), {"hidden": False})):
        response = await client.request(method, url, json=body)
        assert response.status_code == 401, (method, url)


# --- the author edits and deletes ----------------------------------------------------------------

async def test_the_author_edits_and_the_sum_moves_by_the_difference(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, listing: dict[str, Any]) -> None:
    author, other = await store.owner(listing), await store.owner(listing)
    review = await store.review(listing, author, rating=2)
    await store.review(listing, other, rating=4)
    response = await client.patch(reviews_url(listing, review["id"]), headers=author.headers,
                                  json={"rating": 5, "body": "Better after the update."})
    assert response.status_code == 200, response.text
    assert (response.json()["rating"], response.json()["title"], response.json()["body"]) == (
        5, "", "Better after the update.")
    assert await counters(runtime, listing) == (2, 9, 4.5)
    assert [e.data["rating"] for e in await events(runtime, "rating.updated")] == [5]


async def test_concurrent_edits_by_the_author_keep_the_sum_exact(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, listing: dict[str, Any]) -> None:
    author = await store.owner(listing)
    review = await store.review(listing, author, rating=3)
    responses = await asyncio.gather(*(client.patch(reviews_url(listing, review["id"]), headers=author.headers,
                                                    json={"rating": 1 + n % 5}) for n in range(10)))
    assert {r.status_code for r in responses} == {200}
    [final] = await listed(client, listing)
    assert await counters(runtime, listing) == (1, final["rating"], float(final["rating"]))


async def test_someone_elses_review_cannot_be_edited_or_deleted(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, listing: dict[str, Any]) -> None:
    author, other = await store.owner(listing), await store.owner(listing)
    review = await store.review(listing, author, rating=2)
    for caller in (other, store.developer):
        edit = await client.patch(reviews_url(listing, review["id"]), headers=caller.headers, json={"rating": 5})
        assert (edit.status_code, edit.json()["code"]) == (404, "review_not_found")
        deleted = await client.delete(reviews_url(listing, review["id"]), headers=caller.headers)
        assert deleted.status_code == 404
    # the review under another listing's path is not found either (A3)
    elsewhere = await store.listing()
    moved = await client.patch(reviews_url(elsewhere, review["id"]), headers=author.headers, json={"rating": 5})
    assert moved.status_code == 404
    assert await counters(runtime, listing) == (1, 2, 2.0)
    [shown] = await listed(client, listing)
    assert shown["rating"] == 2


async def test_an_edit_refuses_unknown_fields(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, listing: dict[str, Any]) -> None:
    author = await store.owner(listing)
    review = await store.review(listing, author, rating=2)
    for extra in ({"hidden": False}, {"listing_id": str(uuid.uuid4())}, {"reply": "x"}, {"rating": 9}):
        response = await client.patch(reviews_url(listing, review["id"]), headers=author.headers, json=extra)
        assert response.status_code == 422, extra


async def test_the_author_deletes_and_the_counters_go_back(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, listing: dict[str, Any]) -> None:
    author = await store.owner(listing)
    review = await store.review(listing, author, rating=4)
    response = await client.delete(reviews_url(listing, review["id"]), headers=author.headers)
    assert response.status_code == 204
    assert await counters(runtime, listing) == (0, 0, 0.0)
    assert await listed(client, listing) == []
    again = await client.delete(reviews_url(listing, review["id"]), headers=author.headers)
    assert again.status_code == 404
    # and may review again
    await store.review(listing, author, rating=1)
    assert await counters(runtime, listing) == (1, 1, 1.0)


async def test_a_moderator_deletes_any_review(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, listing: dict[str, Any]) -> None:
    author = await store.owner(listing)
    review = await store.review(listing, author, rating=1)
    response = await client.delete(reviews_url(listing, review["id"]), headers=store.reviewer.headers)
    assert response.status_code == 204
    assert await counters(runtime, listing) == (0, 0, 0.0)
    assert [e.data["user_id"] for e in await events(runtime, "rating.deleted")] == [author.id]


# --- the publisher replies -------------------------------------------------------------------------

async def test_members_of_the_publisher_reply_and_may_replace_the_reply(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, listing: dict[str, Any]) -> None:
    author = await store.owner(listing)
    review = await store.review(listing, author, rating=2)
    url = reviews_url(listing, review["id"], "/reply")
    first = await client.post(url, headers=store.developer.headers, json={"body": "Sorry! Fixed in **1.1**."})
    assert first.status_code == 200, first.text
    assert first.json()["reply"]["body_html"] == "<p>Sorry! Fixed in <strong>1.1</strong>.</p>\n"
    second = await client.post(url, headers=store.member.headers, json={"body": "Update: 1.2 is out."})
    assert second.status_code == 200
    [shown] = await listed(client, listing)
    assert shown["reply"]["body"] == "Update: 1.2 is out."
    assert len(await events(runtime, "rating.replied")) == 2
    assert await counters(runtime, listing) == (1, 2, 2.0)


async def test_only_the_publishers_members_reply(
        store: Store, client: httpx.AsyncClient, actors: Actors, runtime: Runtime, listing: dict[str, Any]) -> None:
    author = await store.owner(listing)
    review = await store.review(listing, author, rating=2)
    other_developer = await actors.create()
    await actors.publisher(other_developer)
    url = reviews_url(listing, review["id"], "/reply")
    for caller in (author, other_developer, store.reviewer):
        response = await client.post(url, headers=caller.headers, json={"body": "I speak for them"})
        assert response.status_code == 403, caller.email
    unknown = await client.post(reviews_url(listing, str(uuid.uuid4()), "/reply"), headers=store.developer.headers,
                                json={"body": "Hello"})
    assert unknown.status_code == 404
    assert (await client.post(url, headers=store.developer.headers, json={"body": ""})).status_code == 422
    assert (await listed(client, listing))[0]["reply"] is None


# --- moderation ------------------------------------------------------------------------------------

async def hide(client: httpx.AsyncClient, actor: Actor, listing: dict[str, Any], review_id: str,
               hidden: bool = True, reason: str | None = "Abusive language") -> httpx.Response:
    body: dict[str, Any] = {"hidden": hidden, **({"reason": reason} if reason else {})}
    return await client.post(reviews_url(listing, review_id, "/hide"), headers=actor.headers, json=body)


async def test_a_hidden_review_stops_counting_and_is_shown_only_to_its_author_and_moderators(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, user: Actor, listing: dict[str, Any]) -> None:
    author, fair = await store.owner(listing), await store.owner(listing)
    abusive = await store.review(listing, author, rating=1, body="rude words")
    kind = await store.review(listing, fair, rating=5)
    response = await hide(client, store.reviewer, listing, abusive["id"])
    assert response.status_code == 200, response.text
    assert (response.json()["hidden"], response.json()["hidden_reason"]) == (True, "Abusive language")
    assert await counters(runtime, listing) == (1, 5, 5.0)

    for viewer in (None, user, fair, store.developer):
        assert [r["rating"] for r in await listed(client, listing, viewer)] == [5]
    [own, _] = sorted(await listed(client, listing, author), key=lambda r: r["rating"])
    assert (own["id"], own["hidden"], own["hidden_reason"], own["mine"]) == (abusive["id"], True,
                                                                              "Abusive language", True)
    for moderator in (store.reviewer, store.admin):
        assert {r["id"] for r in await listed(client, listing, moderator)} == {abusive["id"], kind["id"]}
    # the author's edit of a hidden review moves nothing
    edited = await client.patch(reviews_url(listing, abusive["id"]), headers=author.headers, json={"rating": 3})
    assert edited.status_code == 200 and edited.json()["hidden"] is True
    assert await counters(runtime, listing) == (1, 5, 5.0)

    shown = await hide(client, store.admin, listing, abusive["id"], hidden=False, reason=None)
    assert shown.status_code == 200, shown.text
    assert (shown.json()["hidden"], shown.json()["hidden_reason"]) == (False, None)
    assert await counters(runtime, listing) == (2, 8, 4.0)

    hidden_rows = await audit_rows(runtime, "rating:hide")
    assert [(r.actor_id, r.resource_id, r.after["reason"]) for r in hidden_rows] == [  # type: ignore[index]
        (uuid.UUID(store.reviewer.id), abusive["id"], "Abusive language")]
    assert [r.actor_id for r in await audit_rows(runtime, "rating:unhide")] == [uuid.UUID(store.admin.id)]
    assert [e.data["hidden"] for e in await events(runtime, "rating.hidden")] == [True, False]


async def test_hiding_twice_is_a_conflict_and_deleting_a_hidden_review_moves_nothing(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, listing: dict[str, Any]) -> None:
    author = await store.owner(listing)
    review = await store.review(listing, author, rating=2)
    assert (await hide(client, store.reviewer, listing, review["id"])).status_code == 200
    again = await hide(client, store.reviewer, listing, review["id"])
    assert (again.status_code, again.json()["code"]) == (409, "invalid_transition")
    visible = await hide(client, store.reviewer, listing, review["id"], hidden=False)
    assert visible.status_code == 200
    assert (await hide(client, store.reviewer, listing, review["id"], hidden=False)).status_code == 409
    assert (await hide(client, store.reviewer, listing, review["id"])).status_code == 200
    assert len(await audit_rows(runtime, "rating:hide")) == 2
    assert (await client.delete(reviews_url(listing, review["id"]), headers=author.headers)).status_code == 204
    assert await counters(runtime, listing) == (0, 0, 0.0)


async def test_only_moderators_hide_and_a_reason_is_required(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, listing: dict[str, Any]) -> None:
    author = await store.owner(listing)
    review = await store.review(listing, author, rating=1)
    for caller in (author, store.developer, store.member):
        assert (await hide(client, caller, listing, review["id"])).status_code == 403
    assert (await hide(client, store.reviewer, listing, review["id"], reason=None)).status_code == 422
    unknown = await hide(client, store.reviewer, listing, str(uuid.uuid4()))
    assert (unknown.status_code, unknown.json()["code"]) == (404, "review_not_found")
    assert await counters(runtime, listing) == (1, 1, 1.0)
    assert await audit_rows(runtime, "rating:hide") == []


# --- reading ---------------------------------------------------------------------------------------

async def test_reviews_sort_and_page_with_cursors(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, listing: dict[str, Any]) -> None:
    ratings = [3, 5, 1, 4, 5, 2]
    ids = []
    for rating in ratings:
        ids.append((await store.review(listing, await store.owner(listing), rating=rating))["id"])

    async def walk(sort: str) -> list[str]:
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"sort": sort, "limit": 2, **({"cursor": cursor} if cursor else {})}
            response = await client.get(reviews_url(listing), params=params)
            assert response.status_code == 200, response.text
            seen += [r["id"] for r in response.json()["items"]]
            cursor = response.json()["next_cursor"]
            if cursor is None:
                return seen

    newest = list(reversed(ids))
    assert await walk("newest") == newest
    by_rating = {review_id: rating for review_id, rating in zip(ids, ratings, strict=True)}
    assert await walk("rating_high") == sorted(newest, key=lambda i: -by_rating[i])
    assert await walk("rating_low") == sorted(newest, key=lambda i: by_rating[i])

    first = await client.get(reviews_url(listing), params={"sort": "newest", "limit": 2})
    cursor = first.json()["next_cursor"]
    forged = base64.urlsafe_b64encode(json.dumps(["newest", 1, "2026-01-01", "x"]).encode()).decode()
    for params in ({"cursor": "garbage"}, {"cursor": cursor, "sort": "rating_high"}, {"sort": "best"},
                   {"cursor": forged}):
        response = await client.get(reviews_url(listing), params=params)
        assert response.status_code == 422, params


async def test_markdown_is_rendered_safely(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, listing: dict[str, Any]) -> None:
    author = await store.owner(listing)
    review = await store.review(listing, author, rating=3, body='<script>alert(1)</script> [site](https://example.org) '
                                                               '[bad](javascript:alert(1))')
    html = review["body_html"]
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="https://example.org"' in html and 'rel="nofollow ugc noopener"' in html
    assert 'href="javascript' not in html


async def test_authors_appear_by_display_name_never_by_email(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, listing: dict[str, Any]) -> None:
    named, unnamed = await store.owner(listing), await store.owner(listing)
    renamed = await client.patch(f"{V1}/me", headers=named.headers, json={"display_name": "Ada L."})
    assert renamed.status_code == 200
    await store.review(listing, named, rating=5)
    await store.review(listing, unnamed, rating=4)
    for viewer in (None, named, store.developer, store.admin):
        response = await client.get(reviews_url(listing), headers=viewer.headers if viewer else {})
        names = {r["rating"]: r["author"]["name"] for r in response.json()["items"]}
        assert names == {5: "Ada L.", 4: "A user"}
        for actor in (named, unnamed):
            assert actor.email.lower() not in response.text.lower()
            assert actor.id not in response.text
