"""Matrix rows (A2/A3/A6) of the library, ratings, notifications and publisher stats routes.

Listings are made by the super admin for the publisher ``mine`` (the developer's) and
published with the catalog repository's guarded transition (the review flow is tested in
the catalog and review suites). Reviews are written through the API by the caller (or,
for an anonymous request, by the plain user); the developer reviews a listing of
``theirs``, since publishers do not review their own listings.
"""

from __future__ import annotations

import uuid
from typing import Any

from mercato.library import service as library
from mercato.notifications import service as notifications
from tests.access.matrix import (
    ADMIN,
    ADMINS,
    DEV,
    OTHER_DEV,
    REVIEWER,
    SUPER,
    USER,
    V1,
    Make,
    Row,
    World,
    caller,
    dynamic,
    everyone,
    only,
    signed_in,
    slug,
    static,
)
from tests.library.support import publish_listing

REVIEW = f"{V1}/listings/{{listing_id}}/reviews"
MODERATORS = (REVIEWER, *ADMINS)


async def a_listing(world: World, publisher: str | None = None, *, published: bool = True,
                    price: int = 0) -> dict[str, Any]:
    response = await world.client.post(f"{V1}/listings", headers=world.super_admin.headers, json={
        "publisher": publisher or world.mine, "slug": slug(), "name": "Matrix App", "kind": "app",
        "offers": [{"delivery": "digital", "price": {"amount": price, "currency": "USD"}}]})
    assert response.status_code == 201, response.text
    listing: dict[str, Any] = response.json()
    if published:
        await publish_listing(world.runtime, listing["id"])
    return listing


async def entitle(world: World, user_id: str, listing_id: str) -> str:
    async with world.runtime.db.transaction() as session:
        entitlement = await library.grant(session, user_id=uuid.UUID(user_id), listing_id=uuid.UUID(listing_id),
                                          source="purchase")
        return str(entitlement.id)


async def a_review(world: World, who: str) -> tuple[dict[str, Any], str]:
    """A listing and the review of it by ``who`` (the plain user for anonymous requests)."""
    author = caller(world, who)
    listing = await a_listing(world, world.theirs if who == DEV else world.mine)
    await entitle(world, author.id, listing["id"])
    response = await world.client.post(f"{V1}/listings/{listing['id']}/reviews", headers=author.headers,
                                       json={"rating": 4, "body": "Matrix"})
    assert response.status_code == 201, response.text
    return listing, str(response.json()["id"])


async def a_strangers_review(world: World) -> tuple[dict[str, Any], str]:
    """A review of a listing of ``mine`` by someone who is none of the principals."""
    stranger = await world.actors.create()
    listing = await a_listing(world)
    await entitle(world, stranger.id, listing["id"])
    response = await world.client.post(f"{V1}/listings/{listing['id']}/reviews", headers=stranger.headers,
                                       json={"rating": 2})
    assert response.status_code == 201, response.text
    return listing, str(response.json()["id"])


def on_review(whose: str, suffix: str = "", **kwargs: Any) -> Make:
    """A request about a fresh review: the caller's own (``own``) or a stranger's (``other``)."""
    async def make(world: World, who: str) -> dict[str, Any]:
        listing, review_id = await (a_review(world, who) if whose == "own" else a_strangers_review(world))
        return {"url": f"{V1}/listings/{listing['id']}/reviews/{review_id}{suffix}", **kwargs}

    return make


def on_hidden_review(**kwargs: Any) -> Make:
    async def make(world: World, who: str) -> dict[str, Any]:
        listing, review_id = await a_strangers_review(world)
        url = f"{V1}/listings/{listing['id']}/reviews/{review_id}/hide"
        hidden = await world.client.post(url, headers=world.super_admin.headers,
                                         json={"hidden": True, "reason": "Abusive"})
        assert hidden.status_code == 200, hidden.text
        return {"url": url, **kwargs}

    return make


def on_listing(suffix: str, *, published: bool = True, **kwargs: Any) -> Make:
    async def make(world: World, who: str) -> dict[str, Any]:
        listing = await a_listing(world, published=published)
        return {"url": f"{V1}/listings/{listing['id']}{suffix}", **kwargs}

    return make


async def review_as_caller(world: World, who: str) -> dict[str, Any]:
    """The caller owns a listing of a publisher they are not a member of."""
    listing = await a_listing(world, world.theirs if who == DEV else world.mine)
    await entitle(world, caller(world, who).id, listing["id"])
    return {"url": f"{V1}/listings/{listing['id']}/reviews", "json": {"rating": 5}}


async def review_of_mine_as_caller(world: World, who: str) -> dict[str, Any]:
    """The caller owns a listing of ``mine``: the developer, its member, may not review it."""
    listing = await a_listing(world)
    await entitle(world, caller(world, who).id, listing["id"])
    return {"url": f"{V1}/listings/{listing['id']}/reviews", "json": {"rating": 5}}


async def grant_body(world: World, who: str) -> dict[str, Any]:
    user_id, _ = await world.new_account()
    listing = await a_listing(world, price=900)
    return {"url": f"{V1}/admin/entitlements", "json": {"user_id": user_id, "listing_id": listing["id"]}}


async def an_entitlement(world: World, *, revoked: bool = False) -> dict[str, Any]:
    user_id, _ = await world.new_account()
    listing = await a_listing(world, price=900)
    entitlement_id = await entitle(world, user_id, listing["id"])
    if revoked:
        async with world.runtime.db.transaction() as session:
            await library.revoke(session, user_id=uuid.UUID(user_id), listing_id=uuid.UUID(listing["id"]),
                                 reason="refunded")
    return {"url": f"{V1}/admin/entitlements/{entitlement_id}"}


async def a_notification(world: World, user_id: str) -> str:
    async with world.runtime.db.transaction() as session:
        [created] = await notifications.notify(session, event_id=uuid.uuid4(), user_ids=[uuid.UUID(user_id)],
                                               kind="listing.published", title="Matrix")
        return str(created.id)


async def read_own_notification(world: World, who: str) -> dict[str, Any]:
    return {"url": f"{V1}/notifications/{await a_notification(world, caller(world, who).id)}/read"}


async def read_someone_elses_notification(world: World, who: str) -> dict[str, Any]:
    victim, _ = await world.new_account()
    return {"url": f"{V1}/notifications/{await a_notification(world, victim)}/read"}


MATRIX_ROWS: list[Row] = [
    # library (L1/L2)
    Row("my library", "GET", f"{V1}/library", signed_in(200), static(f"{V1}/library")),
    Row("list entitlements", "GET", f"{V1}/admin/entitlements", only(*ADMINS, status=200),
        static(f"{V1}/admin/entitlements")),
    Row("grant an entitlement", "POST", f"{V1}/admin/entitlements", only(*ADMINS, status=201), grant_body),
    Row("grant an unknown listing (A3)", "POST", f"{V1}/admin/entitlements", only(*ADMINS, status=404),
        dynamic(lambda w, who: {"url": f"{V1}/admin/entitlements",
                                "json": {"user_id": w.who[USER].id, "listing_id": str(uuid.uuid4())}})),
    Row("revoke an entitlement", "DELETE", f"{V1}/admin/entitlements/{{entitlement_id}}",
        only(*ADMINS, status=200), dynamic(lambda w, who: an_entitlement(w))),
    Row("revoke a revoked entitlement (A6)", "DELETE", f"{V1}/admin/entitlements/{{entitlement_id}}",
        only(*ADMINS, status=409), dynamic(lambda w, who: an_entitlement(w, revoked=True))),
    Row("revoke an unknown entitlement (A3)", "DELETE", f"{V1}/admin/entitlements/{{entitlement_id}}",
        only(*ADMINS, status=404), static(f"{V1}/admin/entitlements/{uuid.uuid4()}")),
    # ratings and reviews (C5)
    Row("read reviews", "GET", REVIEW, everyone(200), on_listing("/reviews")),
    Row("read reviews of an unknown listing", "GET", REVIEW, everyone(404),
        static(f"{V1}/listings/no-such-listing/reviews")),
    Row("read reviews of a draft (own / other's)", "GET", REVIEW,
        {**everyone(404), DEV: 200, REVIEWER: 200, ADMIN: 200, SUPER: 200},
        on_listing("/reviews", published=False)),
    Row("review an owned listing", "POST", REVIEW, signed_in(201), review_as_caller),
    Row("review a listing not owned", "POST", REVIEW, signed_in(403), on_listing("/reviews", json={"rating": 5})),
    Row("review an owned listing of own publisher (developer) / other's", "POST", REVIEW,
        {**signed_in(201), DEV: 403}, review_of_mine_as_caller),
    Row("edit own review", "PATCH", f"{REVIEW}/{{review_id}}", signed_in(200), on_review("own", json={"rating": 2})),
    Row("edit someone else's review (A3)", "PATCH", f"{REVIEW}/{{review_id}}", signed_in(404),
        on_review("other", json={"rating": 5})),
    Row("edit an unknown review", "PATCH", f"{REVIEW}/{{review_id}}", signed_in(404),
        on_listing(f"/reviews/{uuid.uuid4()}", json={"rating": 5})),
    Row("delete own review", "DELETE", f"{REVIEW}/{{review_id}}", signed_in(204), on_review("own")),
    Row("delete someone else's review (A3; moderators may)", "DELETE", f"{REVIEW}/{{review_id}}",
        {**signed_in(404), **dict.fromkeys(MODERATORS, 204)}, on_review("other")),
    Row("reply to a review of own listing / other's", "POST", f"{REVIEW}/{{review_id}}/reply",
        only(DEV, *ADMINS, status=200), on_review("other", "/reply", json={"body": "Thanks"})),
    Row("reply to an unknown review", "POST", f"{REVIEW}/{{review_id}}/reply", only(DEV, *ADMINS, status=404),
        on_listing(f"/reviews/{uuid.uuid4()}/reply", json={"body": "Thanks"})),
    Row("hide a review", "POST", f"{REVIEW}/{{review_id}}/hide", only(*MODERATORS, status=200),
        on_review("other", "/hide", json={"hidden": True, "reason": "Abusive"})),
    Row("hide a hidden review (A6)", "POST", f"{REVIEW}/{{review_id}}/hide", only(*MODERATORS, status=409),
        on_hidden_review(json={"hidden": True, "reason": "Abusive"})),
    Row("hide an unknown review", "POST", f"{REVIEW}/{{review_id}}/hide", only(*MODERATORS, status=404),
        on_listing(f"/reviews/{uuid.uuid4()}/hide", json={"hidden": True, "reason": "Abusive"})),
    # notifications (O5)
    Row("my notifications", "GET", f"{V1}/notifications", signed_in(200), static(f"{V1}/notifications")),
    Row("read own notification", "POST", f"{V1}/notifications/{{notification_id}}/read", signed_in(200),
        read_own_notification),
    Row("read someone else's notification (A3)", "POST", f"{V1}/notifications/{{notification_id}}/read",
        signed_in(404), read_someone_elses_notification),
    Row("read an unknown notification", "POST", f"{V1}/notifications/{{notification_id}}/read", signed_in(404),
        static(f"{V1}/notifications/{uuid.uuid4()}/read")),
    Row("read all notifications", "POST", f"{V1}/notifications/read-all", signed_in(200),
        static(f"{V1}/notifications/read-all")),
    # publisher dashboard (P6)
    Row("own publisher's stats / other's", "GET", f"{V1}/publishers/{{slug}}/stats",
        only(DEV, ADMIN, SUPER, status=200), dynamic(lambda w, who: {"url": f"{V1}/publishers/{w.mine}/stats"})),
    Row("stats of an unknown publisher", "GET", f"{V1}/publishers/{{slug}}/stats",
        only(DEV, OTHER_DEV, ADMIN, SUPER, status=404), static(f"{V1}/publishers/no-such-publisher/stats")),
]
