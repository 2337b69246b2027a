"""L1/L2: libraries and entitlements — free "gets" on first download, grants that stay one
row under concurrency, admin grants and revocations with audit, the caller's library."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from sqlalchemy import func, select

from mercato.app.runtime import Runtime
from mercato.library import service as library
from mercato.models import Entitlement
from tests.library.support import V1, Store, audit_rows, events, grant, listing_row
from tests.support.actors import Actor, Actors


@pytest.fixture
async def store(client: httpx.AsyncClient, actors: Actors, runtime: Runtime) -> Store:
    return await Store.open(client, actors, runtime)


async def entitlement_of(runtime: Runtime, user: Actor, listing_id: str) -> Entitlement | None:
    async with runtime.db.read_session() as session:
        return await session.scalar(select(Entitlement).where(
            Entitlement.user_id == uuid.UUID(user.id), Entitlement.listing_id == uuid.UUID(listing_id)))


async def download(runtime: Runtime, user: Actor, listing_id: str, *, count: bool = True) -> bool:
    """What the download endpoint asks the library before it serves an artifact."""
    listing = await listing_row(runtime, listing_id)
    async with runtime.db.transaction() as session:
        return await library.entitle_for_download(session, user_id=uuid.UUID(user.id), listing=listing, count=count)


async def library_slugs(client: httpx.AsyncClient, user: Actor, **params: object) -> list[str]:
    response = await client.get(f"{V1}/library", headers=user.headers, params=params)
    assert response.status_code == 200, response.text
    return [item["listing"]["slug"] for item in response.json()["items"]]


# --- downloads and free "gets" ----------------------------------------------------------------

async def test_a_free_listing_is_got_on_first_download_and_each_download_is_counted(
        store: Store, runtime: Runtime, user: Actor) -> None:
    listing = await store.listing(price=0)
    assert await download(runtime, user, listing["id"])
    assert await download(runtime, user, listing["id"])
    entitlement = await entitlement_of(runtime, user, listing["id"])
    assert entitlement is not None
    assert (entitlement.source, entitlement.download_count, entitlement.revoked_at) == ("free", 2, None)
    granted = await events(runtime, "entitlement.granted")
    assert [(e.data["user_id"], e.data["source"]) for e in granted] == [(user.id, "free")]


async def test_a_paid_listing_is_downloadable_only_by_its_owners(
        store: Store, runtime: Runtime, user: Actor) -> None:
    listing = await store.listing(price=499)
    assert not await download(runtime, user, listing["id"])
    assert await entitlement_of(runtime, user, listing["id"]) is None
    await grant(runtime, user, listing["id"], source="purchase")
    assert await download(runtime, user, listing["id"])
    entitlement = await entitlement_of(runtime, user, listing["id"])
    assert entitlement is not None and (entitlement.source, entitlement.download_count) == ("purchase", 1)


async def test_a_free_listing_that_is_not_published_is_not_got(store: Store, runtime: Runtime, user: Actor) -> None:
    draft = await store.listing(price=0, published=False)
    assert not await download(runtime, user, draft["id"])
    assert await entitlement_of(runtime, user, draft["id"]) is None


async def test_a_resumed_or_revalidated_download_can_be_checked_without_counting(
        store: Store, runtime: Runtime, user: Actor) -> None:
    listing = await store.listing(price=0)
    assert await download(runtime, user, listing["id"], count=False)  # gets it, counts nothing
    assert await download(runtime, user, listing["id"], count=False)
    entitlement = await entitlement_of(runtime, user, listing["id"])
    assert entitlement is not None and entitlement.download_count == 0


async def test_concurrent_grants_leave_one_entitlement_and_one_event(
        store: Store, runtime: Runtime, user: Actor) -> None:
    listing = await store.listing(price=0)
    await asyncio.gather(*(download(runtime, user, listing["id"]) for _ in range(12)))
    async with runtime.db.read_session() as session:
        rows = await session.scalar(select(func.count()).select_from(Entitlement).where(
            Entitlement.user_id == uuid.UUID(user.id)))
    assert rows == 1
    entitlement = await entitlement_of(runtime, user, listing["id"])
    assert entitlement is not None and entitlement.download_count == 12
    assert len(await events(runtime, "entitlement.granted")) == 1


async def test_a_revoked_entitlement_is_granted_again_on_the_same_row(
        store: Store, runtime: Runtime, user: Actor) -> None:
    listing = await store.listing(price=499)
    await grant(runtime, user, listing["id"])
    assert await download(runtime, user, listing["id"])
    first = await entitlement_of(runtime, user, listing["id"])
    async with runtime.db.transaction() as session:
        assert await library.revoke(session, user_id=uuid.UUID(user.id), listing_id=uuid.UUID(listing["id"]),
                                    reason="refunded")
        assert not await library.revoke(session, user_id=uuid.UUID(user.id), listing_id=uuid.UUID(listing["id"]),
                                        reason="refunded again")
        assert not await library.is_entitled(session, user_id=uuid.UUID(user.id),
                                             listing_id=uuid.UUID(listing["id"]))
    assert not await download(runtime, user, listing["id"])
    await grant(runtime, user, listing["id"], source="admin")
    again = await entitlement_of(runtime, user, listing["id"])
    assert first is not None and again is not None
    assert (again.id, again.source, again.revoked_at, again.download_count) == (first.id, "admin", None, 1)
    assert [e.data["reason"] for e in await events(runtime, "entitlement.revoked")] == ["refunded"]
    assert len(await events(runtime, "entitlement.granted")) == 2


# --- GET /library --------------------------------------------------------------------------------

async def test_the_library_lists_what_the_caller_owns_newest_first_in_pages(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, actors: Actors, user: Actor) -> None:
    owned = [await store.listing(price=price) for price in (0, 250, 999)]
    not_mine = await store.listing(price=0)
    for listing in owned:
        await grant(runtime, user, listing["id"])
    someone = await actors.create()
    await grant(runtime, someone, not_mine["id"])

    newest_first = [listing["slug"] for listing in reversed(owned)]
    assert await library_slugs(client, user) == newest_first
    pages: list[str] = []
    cursor = None
    while True:
        response = await client.get(f"{V1}/library", headers=user.headers,
                                    params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200
        pages += [item["listing"]["slug"] for item in response.json()["items"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
    assert pages == newest_first

    item = (await client.get(f"{V1}/library", headers=user.headers)).json()["items"][-1]
    assert (item["source"], item["download_count"], item["listing"]["id"]) == ("purchase", 0, owned[0]["id"])
    assert item["listing"]["publisher"]["slug"] == store.publisher


async def test_a_revoked_entitlement_leaves_the_library(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, user: Actor) -> None:
    listing = await store.listing(price=100)
    await grant(runtime, user, listing["id"])
    async with runtime.db.transaction() as session:
        await library.revoke(session, user_id=uuid.UUID(user.id), listing_id=uuid.UUID(listing["id"]),
                             reason="refunded")
    assert await library_slugs(client, user) == []


async def test_the_library_needs_a_signed_in_caller_and_a_valid_cursor(client: httpx.AsyncClient,
                                                                       user: Actor) -> None:
    assert (await client.get(f"{V1}/library")).status_code == 401
    response = await client.get(f"{V1}/library", headers=user.headers, params={"cursor": "not-a-cursor"})
    assert (response.status_code, response.json()["code"]) == (422, "invalid_cursor")


# --- admin grants and revocations (L2) ----------------------------------------------------------

async def admin_grant(client: httpx.AsyncClient, admin: Actor, user: Actor | str, listing_id: str,
                      **extra: object) -> httpx.Response:
    user_id = user if isinstance(user, str) else user.id
    return await client.post(f"{V1}/admin/entitlements", headers=admin.headers,
                             json={"user_id": user_id, "listing_id": listing_id, **extra})


async def test_an_admin_grants_a_listing_with_an_audit_row(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, user: Actor) -> None:
    listing = await store.listing(price=1500)
    response = await admin_grant(client, store.admin, user, listing["id"], reason="Press copy")
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["user_id"], body["listing_id"], body["source"], body["active"]) == (
        user.id, listing["id"], "admin", True)
    assert body["granted_by"] == store.admin.id
    assert await library_slugs(client, user) == [listing["slug"]]
    rows = await audit_rows(runtime, "entitlement:grant")
    assert [(r.actor_id, r.resource_id, r.after["reason"]) for r in rows] == [  # type: ignore[index]
        (uuid.UUID(store.admin.id), body["id"], "Press copy")]
    assert [e.data["source"] for e in await events(runtime, "entitlement.granted")] == ["admin"]


async def test_an_admin_grant_leaves_a_purchase_as_it_was(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, user: Actor) -> None:
    listing = await store.listing(price=1500)
    await grant(runtime, user, listing["id"], source="purchase")
    response = await admin_grant(client, store.admin, user, listing["id"])
    assert response.status_code == 201
    assert response.json()["source"] == "purchase"
    assert len(await events(runtime, "entitlement.granted")) == 1
    [row] = await audit_rows(runtime, "entitlement:grant")
    assert row.after["changed"] is False  # type: ignore[index]


async def test_admin_grants_refuse_unknown_users_listings_and_fields(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, user: Actor) -> None:
    listing = await store.listing(price=1500)
    assert (await admin_grant(client, store.admin, str(uuid.uuid4()), listing["id"])).status_code == 404
    assert (await admin_grant(client, store.admin, user, str(uuid.uuid4()))).status_code == 404
    # A4: the source, who granted it and the counters are not the caller's to set
    for extra in ({"source": "purchase"}, {"download_count": 0}, {"granted_by": user.id}):
        response = await admin_grant(client, store.admin, user, listing["id"], **extra)
        assert response.status_code == 422, (extra, response.text)
    assert await audit_rows(runtime, "entitlement:grant") == []
    assert await library_slugs(client, user) == []


async def test_only_admins_grant_and_revoke(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, user: Actor) -> None:
    listing = await store.listing(price=1500)
    for caller in (user, store.developer, store.reviewer):
        assert (await admin_grant(client, caller, caller, listing["id"])).status_code == 403
    assert (await client.post(f"{V1}/admin/entitlements", json={"user_id": user.id,
                                                                "listing_id": listing["id"]})).status_code == 401
    granted = (await admin_grant(client, store.admin, user, listing["id"])).json()
    for caller in (user, store.developer, store.reviewer):
        response = await client.delete(f"{V1}/admin/entitlements/{granted['id']}", headers=caller.headers)
        assert response.status_code == 403
    assert (await client.delete(f"{V1}/admin/entitlements/{granted['id']}")).status_code == 401
    assert await library_slugs(client, user) == [listing["slug"]]


async def test_an_admin_revokes_once_with_an_audit_row(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, user: Actor) -> None:
    listing = await store.listing(price=1500)
    await grant(runtime, user, listing["id"])
    entitlement = await entitlement_of(runtime, user, listing["id"])
    assert entitlement is not None
    url = f"{V1}/admin/entitlements/{entitlement.id}"
    response = await client.delete(url, headers=store.admin.headers, params={"reason": "Chargeback"})
    assert response.status_code == 200, response.text
    assert (response.json()["active"], response.json()["revoked_reason"]) == (False, "Chargeback")
    assert await library_slugs(client, user) == []
    again = await client.delete(url, headers=store.admin.headers)
    assert (again.status_code, again.json()["code"]) == (409, "invalid_transition")
    unknown = await client.delete(f"{V1}/admin/entitlements/{uuid.uuid4()}", headers=store.admin.headers)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "entitlement_not_found")
    rows = await audit_rows(runtime, "entitlement:revoke")
    assert [(r.actor_id, r.resource_id, r.after["reason"]) for r in rows] == [  # type: ignore[index]
        (uuid.UUID(store.admin.id), str(entitlement.id), "Chargeback")]
    assert len(await events(runtime, "entitlement.revoked")) == 1


async def test_concurrent_revocations_revoke_once(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, user: Actor) -> None:
    listing = await store.listing(price=1500)
    await grant(runtime, user, listing["id"])
    entitlement = await entitlement_of(runtime, user, listing["id"])
    assert entitlement is not None
    responses = await asyncio.gather(*(client.delete(f"{V1}/admin/entitlements/{entitlement.id}",
                                                     headers=store.admin.headers) for _ in range(5)))
    assert sorted(r.status_code for r in responses) == [200, 409, 409, 409, 409]
    assert len(await audit_rows(runtime, "entitlement:revoke")) == 1
    assert len(await events(runtime, "entitlement.revoked")) == 1


async def test_admins_find_entitlements_by_user_listing_and_state(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, actors: Actors, user: Actor) -> None:
    first, second = await store.listing(price=100), await store.listing(price=200)
    someone = await actors.create()
    for owner, listing in ((user, first), (user, second), (someone, first)):
        await grant(runtime, owner, listing["id"])
    async with runtime.db.transaction() as session:
        await library.revoke(session, user_id=uuid.UUID(user.id), listing_id=uuid.UUID(second["id"]), reason="x")

    async def find(**params: object) -> list[tuple[str, str, bool]]:
        response = await client.get(f"{V1}/admin/entitlements", headers=store.admin.headers, params=params)
        assert response.status_code == 200, response.text
        return sorted((e["user_id"], e["listing_id"], e["active"]) for e in response.json()["items"])

    assert await find(user_id=user.id) == sorted([(user.id, first["id"], True), (user.id, second["id"], False)])
    assert await find(listing_id=first["id"]) == sorted([(user.id, first["id"], True),
                                                         (someone.id, first["id"], True)])
    assert await find(user_id=user.id, active="true") == [(user.id, first["id"], True)]
    assert await find(user_id=user.id, active="false") == [(user.id, second["id"], False)]
    assert (await client.get(f"{V1}/admin/entitlements", headers=user.headers)).status_code == 403
