"""A5: publishers (slug namespace, profile, owner/member roles, verified badge by admins)."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from sqlalchemy import select

from mercato.app.runtime import Runtime
from mercato.models import AuditEntry, OutboxEvent, Publisher
from tests.support.actors import Actor, Actors

V1 = "/api/v1"


async def create(client: httpx.AsyncClient, admin: Actor, slug: str, owner: Actor | str) -> httpx.Response:
    return await client.post(f"{V1}/publishers", headers=admin.headers, json={
        "slug": slug, "name": f"Publisher {slug}", "owner_email": owner if isinstance(owner, str) else owner.email})


async def profile(client: httpx.AsyncClient, slug: str, viewer: Actor | None = None) -> httpx.Response:
    return await client.get(f"{V1}/publishers/{slug}", headers=viewer.headers if viewer else {})


async def add_member(client: httpx.AsyncClient, actor: Actor, slug: str, member: Actor,
                     role: str = "member") -> httpx.Response:
    return await client.post(f"{V1}/publishers/{slug}/members", headers=actor.headers,
                             json={"email": member.email, "role": role})


async def remove_member(client: httpx.AsyncClient, actor: Actor, slug: str, member: Actor) -> httpx.Response:
    return await client.delete(f"{V1}/publishers/{slug}/members", headers=actor.headers,
                               params={"email": member.email})


async def members(client: httpx.AsyncClient, slug: str, admin: Actor) -> dict[str, str]:
    body = (await profile(client, slug, admin)).json()
    return {m["email"]: m["role"] for m in body["members"]}


async def events(runtime: Runtime, type_: str) -> list[OutboxEvent]:
    async with runtime.db.read_session() as session:
        return list(await session.scalars(select(OutboxEvent).where(OutboxEvent.type == type_)
                                          .order_by(OutboxEvent.sequence)))


async def audit(runtime: Runtime, action: str) -> list[AuditEntry]:
    async with runtime.db.read_session() as session:
        return list(await session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


@pytest.fixture
async def owner(actors: Actors) -> Actor:
    return await actors.create()


@pytest.fixture
async def acme(client: httpx.AsyncClient, admin: Actor, owner: Actor) -> dict:  # type: ignore[type-arg]
    response = await create(client, admin, "acme", owner)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


# --- creation -------------------------------------------------------------------------------------

async def test_an_admin_creates_a_publisher_whose_owner_becomes_a_developer(
        client: httpx.AsyncClient, runtime: Runtime, admin: Actor, owner: Actor) -> None:
    response = await create(client, admin, "acme", owner)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["slug"], body["verified"]) == ("acme", False)
    assert [(m["email"], m["role"]) for m in body["members"]] == [(owner.email, "owner")]
    assert (await client.get(f"{V1}/me", headers=owner.headers)).json()["roles"] == ["developer", "user"]
    assert [(e.subject, e.data["slug"]) for e in await events(runtime, "publisher.created")] == [(body["id"], "acme")]
    rows = await audit(runtime, "publisher:create")
    assert [(r.actor_id, r.resource_id) for r in rows] == [(uuid.UUID(admin.id), body["id"])]


async def test_a_taken_slug_is_refused(
        client: httpx.AsyncClient, runtime: Runtime, admin: Actor, owner: Actor, acme: dict) -> None:  # type: ignore[type-arg]
    response = await create(client, admin, "acme", owner)
    assert response.status_code == 409
    assert response.json()["code"] == "slug_taken"
    assert len(await events(runtime, "publisher.created")) == 1


async def test_concurrent_creations_of_one_slug_make_one_publisher(
        client: httpx.AsyncClient, runtime: Runtime, actors: Actors, admin: Actor) -> None:
    owners = [await actors.create() for _ in range(3)]
    responses = await asyncio.gather(*(create(client, admin, "contested", o) for o in owners))
    assert sorted(r.status_code for r in responses) == [201, 409, 409], [r.text for r in responses]
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"slug_taken"}
    async with runtime.db.read_session() as session:
        assert len(list(await session.scalars(select(Publisher).where(Publisher.slug == "contested")))) == 1
    assert len(await events(runtime, "publisher.created")) == 1


async def test_a_publisher_for_an_unknown_account_is_refused(client: httpx.AsyncClient, admin: Actor) -> None:
    response = await create(client, admin, "ghost-co", "nobody@example.org")
    assert response.status_code == 404
    assert (await profile(client, "ghost-co")).status_code == 404


# --- profile and visibility (A5) --------------------------------------------------------------

async def test_the_public_profile_shows_no_members(
        client: httpx.AsyncClient, actors: Actors, owner: Actor, acme: dict) -> None:  # type: ignore[type-arg]
    stranger = await actors.create()
    other_developer = await actors.create()
    await actors.publisher(other_developer)
    for viewer in (None, stranger, other_developer):
        response = await profile(client, "acme", viewer)
        assert response.status_code == 200
        assert response.json()["members"] is None
        assert owner.email.lower() not in response.text.lower()
        assert owner.id not in response.text


async def test_members_and_admins_see_the_member_list(
        client: httpx.AsyncClient, actors: Actors, admin: Actor, owner: Actor, acme: dict) -> None:  # type: ignore[type-arg]
    member = await actors.create()
    assert (await add_member(client, owner, "acme", member)).status_code == 200
    for viewer in (owner, member, admin):
        listed = (await profile(client, "acme", viewer)).json()["members"]
        assert {(m["email"], m["role"]) for m in listed} == {(owner.email, "owner"), (member.email, "member")}


async def test_an_owner_edits_the_profile(
        client: httpx.AsyncClient, runtime: Runtime, owner: Actor, acme: dict) -> None:  # type: ignore[type-arg]
    response = await client.patch(f"{V1}/publishers/acme", headers=owner.headers, json={
        "name": "Acme Software", "description": "Tools.", "website": "https://acme.example.org/"})
    assert response.status_code == 200, response.text
    body = (await profile(client, "acme")).json()
    assert (body["name"], body["description"], body["website"]) == (
        "Acme Software", "Tools.", "https://acme.example.org/")
    updated = await events(runtime, "publisher.updated")
    assert [sorted(e.data["changed"]) for e in updated] == [["description", "name", "website"]]
    assert len(await audit(runtime, "publisher:update")) == 1


async def test_an_invalid_or_mass_assigning_profile_edit_is_refused(
        client: httpx.AsyncClient, owner: Actor, acme: dict) -> None:  # type: ignore[type-arg]
    for body in ({"slug": "renamed"}, {"id": str(uuid.uuid4())}, {"members": []}, {"name": "X"},
                 {"website": "ftp://files.example.org"}):
        response = await client.patch(f"{V1}/publishers/acme", headers=owner.headers, json=body)
        assert response.status_code == 422, body
    assert (await profile(client, "acme")).json() == {**acme, "members": None}


async def test_another_developer_cannot_edit_the_profile(
        client: httpx.AsyncClient, actors: Actors, acme: dict) -> None:  # type: ignore[type-arg]
    rival = await actors.create()
    await actors.publisher(rival)
    response = await client.patch(f"{V1}/publishers/acme", headers=rival.headers, json={"name": "Hijacked"})
    assert response.status_code == 403
    assert (await profile(client, "acme")).json()["name"] == acme["name"]


async def test_a_plain_member_cannot_edit_the_profile_or_manage_members(
        client: httpx.AsyncClient, actors: Actors, owner: Actor, acme: dict) -> None:  # type: ignore[type-arg]
    member, newcomer = await actors.create(), await actors.create()
    await add_member(client, owner, "acme", member)
    edit = await client.patch(f"{V1}/publishers/acme", headers=member.headers, json={"name": "Mine Now"})
    assert edit.status_code == 403
    assert (await add_member(client, member, "acme", newcomer)).status_code == 403
    assert (await add_member(client, member, "acme", member, role="owner")).status_code == 403
    assert (await remove_member(client, member, "acme", owner)).status_code == 403


# --- verified badge ---------------------------------------------------------------------------

async def test_only_admins_grant_the_verified_badge(
        client: httpx.AsyncClient, runtime: Runtime, admin: Actor, owner: Actor, acme: dict) -> None:  # type: ignore[type-arg]
    refused = await client.patch(f"{V1}/publishers/acme", headers=owner.headers,
                                 json={"verified": True, "name": "Acme Verified"})
    assert refused.status_code == 403
    body = (await profile(client, "acme")).json()
    assert (body["verified"], body["name"]) == (False, acme["name"]), "nothing of a refused edit is kept"

    granted = await client.patch(f"{V1}/publishers/acme", headers=admin.headers, json={"verified": True})
    assert granted.status_code == 200
    assert (await profile(client, "acme")).json()["verified"] is True
    rows = await audit(runtime, "publisher:verify")
    assert [(r.before, r.after) for r in rows] == [({"verified": False}, {"verified": True})]

    revoke = await client.patch(f"{V1}/publishers/acme", headers=owner.headers, json={"verified": False})
    assert revoke.status_code == 403
    assert (await profile(client, "acme")).json()["verified"] is True


# --- members --------------------------------------------------------------------------------------

async def test_an_owner_adds_and_removes_members(
        client: httpx.AsyncClient, runtime: Runtime, actors: Actors, admin: Actor, owner: Actor,
        acme: dict) -> None:  # type: ignore[type-arg]
    member = await actors.create()
    added = await add_member(client, owner, "acme", member)
    assert added.status_code == 200, added.text
    assert await members(client, "acme", admin) == {owner.email: "owner", member.email: "member"}
    assert "developer" in (await client.get(f"{V1}/me", headers=member.headers)).json()["roles"]

    removed = await remove_member(client, owner, "acme", member)
    assert removed.status_code == 204
    assert await members(client, "acme", admin) == {owner.email: "owner"}
    assert (await profile(client, "acme", member)).json()["members"] is None

    assert [e.data["user_id"] for e in await events(runtime, "publisher.member_added")] == [member.id]
    assert [e.data["user_id"] for e in await events(runtime, "publisher.member_removed")] == [member.id]
    assert len(await audit(runtime, "publisher_member:add")) == 1
    assert len(await audit(runtime, "publisher_member:remove")) == 1


async def test_another_developer_cannot_manage_members(
        client: httpx.AsyncClient, actors: Actors, admin: Actor, owner: Actor, acme: dict) -> None:  # type: ignore[type-arg]
    rival = await actors.create()
    await actors.publisher(rival)
    assert (await add_member(client, rival, "acme", rival, role="owner")).status_code == 403
    assert (await remove_member(client, rival, "acme", owner)).status_code == 403
    assert await members(client, "acme", admin) == {owner.email: "owner"}


async def test_the_last_owner_can_be_neither_removed_nor_demoted(
        client: httpx.AsyncClient, actors: Actors, admin: Actor, owner: Actor, acme: dict) -> None:  # type: ignore[type-arg]
    for response in (await remove_member(client, owner, "acme", owner),
                     await add_member(client, owner, "acme", owner, role="member"),
                     await remove_member(client, admin, "acme", owner)):
        assert response.status_code == 409
        assert response.json()["code"] == "last_owner"
    assert await members(client, "acme", admin) == {owner.email: "owner"}

    co_owner = await actors.create()
    assert (await add_member(client, owner, "acme", co_owner, role="owner")).status_code == 200
    assert (await remove_member(client, co_owner, "acme", owner)).status_code == 204
    assert await members(client, "acme", admin) == {co_owner.email: "owner"}
    assert (await remove_member(client, co_owner, "acme", co_owner)).status_code == 409


async def test_concurrent_removals_of_two_owners_leave_one(
        client: httpx.AsyncClient, actors: Actors, admin: Actor, owner: Actor, acme: dict) -> None:  # type: ignore[type-arg]
    co_owner = await actors.create()
    await add_member(client, owner, "acme", co_owner, role="owner")
    responses = await asyncio.gather(remove_member(client, admin, "acme", owner),
                                     remove_member(client, admin, "acme", co_owner))
    assert sorted(r.status_code for r in responses) == [204, 409]
    assert list((await members(client, "acme", admin)).values()) == ["owner"]


async def test_member_management_of_unknown_people_or_publishers_is_not_found(
        client: httpx.AsyncClient, actors: Actors, owner: Actor, acme: dict) -> None:  # type: ignore[type-arg]
    stranger = await actors.create()
    not_member = await remove_member(client, owner, "acme", stranger)
    assert (not_member.status_code, not_member.json()["code"]) == (404, "member_not_found")
    unknown = await client.post(f"{V1}/publishers/acme/members", headers=owner.headers,
                                json={"email": "nobody@example.org"})
    assert unknown.status_code == 404
    no_publisher = await add_member(client, owner, "no-such-co", stranger)
    assert (no_publisher.status_code, no_publisher.json()["code"]) == (404, "publisher_not_found")


# --- secrets never leave (A5) ----------------------------------------------------------------

async def test_no_response_carries_password_or_token_hashes(
        client: httpx.AsyncClient, actors: Actors, admin: Actor, owner: Actor, acme: dict) -> None:  # type: ignore[type-arg]
    member = await actors.create()
    token = await client.post(f"{V1}/me/tokens", headers=owner.headers, json={"name": "cli"})
    secret = token.json()["token"]
    responses = [
        await add_member(client, owner, "acme", member),
        await profile(client, "acme", admin),
        await client.get(f"{V1}/admin/users", headers=admin.headers, params={"limit": 100}),
        await client.get(f"{V1}/me", headers=owner.headers),
        await client.get(f"{V1}/me/tokens", headers=owner.headers),
        await client.get(f"{V1}/admin/audit", headers=admin.headers, params={"limit": 100}),
        await client.get(f"{V1}/admin/audit", headers=admin.headers, params={"format": "csv"}),
    ]
    for response in responses:
        assert response.status_code == 200, response.text
        text = response.text
        for needle in ("password_hash", "token_hash", "$argon2", secret, owner.refresh_token, member.refresh_token):
            assert needle not in text, (response.request.url, needle[:12])
    users = responses[2].json()["items"]
    assert users and all(set(u) == {"id", "email", "display_name", "is_active", "roles", "created_at",
                                    "last_login_at"} for u in users)
