"""A4: users apply to become publishers; an admin approves (the publisher is created with
the applicant as owner, who becomes a developer) or rejects with a reason."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy import select

from mercato.app.runtime import Runtime
from mercato.models import AuditEntry, OutboxEvent, Publisher
from tests.support.actors import Actor, Actors

V1 = "/api/v1"


def new_slug() -> str:
    return f"app-{uuid.uuid4().hex[:8]}"


async def apply(client: httpx.AsyncClient, actor: Actor, slug: str | None = None, **extra: object) -> httpx.Response:
    return await client.post(f"{V1}/publisher-applications", headers=actor.headers, json={
        "slug": slug or new_slug(), "name": "Hello Software", **extra})


async def applied(client: httpx.AsyncClient, actor: Actor, slug: str | None = None) -> dict:  # type: ignore[type-arg]
    response = await apply(client, actor, slug)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def approve(client: httpx.AsyncClient, admin: Actor, application_id: str) -> httpx.Response:
    return await client.post(f"{V1}/admin/publisher-applications/{application_id}/approve", headers=admin.headers)


async def reject(client: httpx.AsyncClient, admin: Actor, application_id: str,
                 reason: str = "We could not verify the company.") -> httpx.Response:
    return await client.post(f"{V1}/admin/publisher-applications/{application_id}/reject", headers=admin.headers,
                             json={"reason": reason})


async def events(runtime: Runtime, type_: str) -> list[OutboxEvent]:
    async with runtime.db.read_session() as session:
        return list(await session.scalars(select(OutboxEvent).where(OutboxEvent.type == type_)
                                          .order_by(OutboxEvent.sequence)))


async def publishers_with_slug(runtime: Runtime, slug: str) -> list[Publisher]:
    async with runtime.db.read_session() as session:
        return list(await session.scalars(select(Publisher).where(Publisher.slug == slug)))


# --- applying ------------------------------------------------------------------------------------

async def test_a_user_applies_and_the_application_is_pending(
        client: httpx.AsyncClient, runtime: Runtime, user: Actor) -> None:
    response = await apply(client, user, "hello-soft", description="Note-taking apps.",
                           website="https://hello.example.org")
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["status"], body["slug"], body["user_id"]) == ("pending", "hello-soft", user.id)
    assert (body["reason"], body["publisher_id"], body["decided_at"]) == (None, None, None)
    mine = await client.get(f"{V1}/me/publisher-applications", headers=user.headers)
    assert [a["id"] for a in mine.json()["items"]] == [body["id"]]
    submitted = await events(runtime, "publisher.application_submitted")
    assert [e.subject for e in submitted] == [body["id"]]
    assert await publishers_with_slug(runtime, "hello-soft") == []


async def test_a_second_pending_application_is_refused(client: httpx.AsyncClient, user: Actor) -> None:
    await applied(client, user)
    second = await apply(client, user)
    assert second.status_code == 409
    assert second.json()["code"] == "application_pending"
    assert len((await client.get(f"{V1}/me/publisher-applications", headers=user.headers)).json()["items"]) == 1


async def test_concurrent_applications_by_one_user_leave_one_pending(
        client: httpx.AsyncClient, user: Actor) -> None:
    responses = await asyncio.gather(*(apply(client, user) for _ in range(4)))
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409]
    mine = (await client.get(f"{V1}/me/publisher-applications", headers=user.headers)).json()["items"]
    assert [a["status"] for a in mine] == ["pending"]


async def test_a_rejected_applicant_may_apply_again(client: httpx.AsyncClient, user: Actor, admin: Actor) -> None:
    first = await applied(client, user)
    assert (await reject(client, admin, first["id"])).status_code == 200
    assert (await apply(client, user)).status_code == 201


async def test_applying_for_a_taken_slug_is_refused(
        client: httpx.AsyncClient, actors: Actors, user: Actor) -> None:
    other, another = await actors.create(), await actors.create()
    await actors.publisher(other, slug="taken-by-publisher")
    await applied(client, another, "taken-by-application")
    for slug in ("taken-by-publisher", "taken-by-application"):
        response = await apply(client, user, slug)
        assert response.status_code == 409, slug
        assert response.json()["code"] == "slug_taken"
    assert (await client.get(f"{V1}/me/publisher-applications", headers=user.headers)).json()["items"] == []


async def test_concurrent_applications_for_one_slug_leave_one_pending(
        client: httpx.AsyncClient, actors: Actors, admin: Actor) -> None:
    applicants = [await actors.create() for _ in range(3)]
    responses = await asyncio.gather(*(apply(client, a, "contested") for a in applicants))
    assert sorted(r.status_code for r in responses) == [201, 409, 409]
    listed = await client.get(f"{V1}/admin/publisher-applications", headers=admin.headers,
                              params={"status": "pending"})
    assert [a["slug"] for a in listed.json()["items"]] == ["contested"]


async def test_an_invalid_application_is_refused(client: httpx.AsyncClient, user: Actor) -> None:
    for body in ({"slug": "Hello", "name": "Upper case slug"},
                 {"slug": "x", "name": "Too short"},
                 {"slug": "ok-slug", "name": "N"},
                 {"slug": "ok-slug", "name": "Mass assignment", "status": "approved"},
                 {"slug": "ok-slug", "name": "Mass assignment", "user_id": str(uuid.uuid4())},
                 {"slug": "ok-slug", "name": "Bad website", "website": "javascript:alert(1)"}):
        response = await client.post(f"{V1}/publisher-applications", headers=user.headers, json=body)
        assert response.status_code == 422, body
    assert (await client.get(f"{V1}/me/publisher-applications", headers=user.headers)).json()["items"] == []


async def test_an_application_replayed_with_its_idempotency_key_is_made_once(
        client: httpx.AsyncClient, user: Actor) -> None:
    headers = {**user.headers, "Idempotency-Key": "apply-once"}
    body = {"slug": "replayed", "name": "Replayed Co"}
    first = await client.post(f"{V1}/publisher-applications", headers=headers, json=body)
    again = await client.post(f"{V1}/publisher-applications", headers=headers, json=body)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert len((await client.get(f"{V1}/me/publisher-applications", headers=user.headers)).json()["items"]) == 1


async def test_a_user_sees_only_their_own_applications(
        client: httpx.AsyncClient, actors: Actors, user: Actor) -> None:
    other = await actors.create()
    await applied(client, other)
    assert (await client.get(f"{V1}/me/publisher-applications", headers=user.headers)).json()["items"] == []


# --- deciding ---------------------------------------------------------------------------------

async def test_approval_creates_the_publisher_with_the_applicant_as_owner_and_developer(
        client: httpx.AsyncClient, runtime: Runtime, user: Actor, admin: Actor) -> None:
    application = await applied(client, user, "approved-co")
    assert (await client.get(f"{V1}/me", headers=user.headers)).json()["roles"] == ["user"]

    response = await approve(client, admin, application["id"])
    assert response.status_code == 200, response.text
    decided = response.json()
    assert decided["status"] == "approved" and decided["decided_at"] is not None
    publisher = (await client.get(f"{V1}/publishers/approved-co", headers=user.headers)).json()
    assert decided["publisher_id"] == publisher["id"]
    assert publisher["name"] == "Hello Software"
    assert [(m["user_id"], m["role"]) for m in publisher["members"]] == [(user.id, "owner")]
    # the role is there on the applicant's next request, with the same token
    assert (await client.get(f"{V1}/me", headers=user.headers)).json()["roles"] == ["developer", "user"]
    edited = await client.patch(f"{V1}/publishers/approved-co", headers=user.headers,
                                json={"description": "Now ours."})
    assert edited.status_code == 200

    created = await events(runtime, "publisher.created")
    assert [(e.subject, e.data["owner_id"]) for e in created] == [(publisher["id"], user.id)]
    approved = await events(runtime, "publisher.application_approved")
    assert [(e.subject, e.data["publisher_id"]) for e in approved] == [(application["id"], publisher["id"])]


async def test_an_application_is_decided_only_once(
        client: httpx.AsyncClient, runtime: Runtime, user: Actor, admin: Actor) -> None:
    application = await applied(client, user)
    assert (await approve(client, admin, application["id"])).status_code == 200
    for again in (await approve(client, admin, application["id"]), await reject(client, admin, application["id"])):
        assert again.status_code == 409
        assert again.json()["code"] == "invalid_transition"
    assert len(await events(runtime, "publisher.created")) == 1
    mine = (await client.get(f"{V1}/me/publisher-applications", headers=user.headers)).json()["items"]
    assert [a["status"] for a in mine] == ["approved"]


async def test_concurrent_approvals_create_one_publisher(
        client: httpx.AsyncClient, runtime: Runtime, actors: Actors, user: Actor, admin: Actor) -> None:
    second_admin = await actors.create("marketplace_admin")
    application = await applied(client, user, "raced")
    responses = await asyncio.gather(approve(client, admin, application["id"]),
                                     approve(client, second_admin, application["id"]),
                                     approve(client, admin, application["id"]))
    assert sorted(r.status_code for r in responses) == [200, 409, 409], [r.text for r in responses]
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"invalid_transition"}
    assert len(await publishers_with_slug(runtime, "raced")) == 1
    assert len(await events(runtime, "publisher.application_approved")) == 1


async def test_an_approval_racing_a_rejection_has_one_winner(
        client: httpx.AsyncClient, runtime: Runtime, user: Actor, admin: Actor) -> None:
    application = await applied(client, user, "raced")
    responses = await asyncio.gather(approve(client, admin, application["id"]),
                                     reject(client, admin, application["id"]))
    assert sorted(r.status_code for r in responses) == [200, 409], [r.text for r in responses]
    winner = next(r.json() for r in responses if r.status_code == 200)
    mine = (await client.get(f"{V1}/me/publisher-applications", headers=user.headers)).json()["items"]
    assert [a["status"] for a in mine] == [winner["status"]]
    assert len(await publishers_with_slug(runtime, "raced")) == (1 if winner["status"] == "approved" else 0)


async def test_a_rejection_records_the_reason_and_creates_nothing(
        client: httpx.AsyncClient, runtime: Runtime, user: Actor, admin: Actor) -> None:
    application = await applied(client, user, "rejected-co")
    response = await reject(client, admin, application["id"], "Please add a website first.")
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["reason"]) == ("rejected", "Please add a website first.")
    mine = (await client.get(f"{V1}/me/publisher-applications", headers=user.headers)).json()["items"]
    assert [(a["status"], a["reason"]) for a in mine] == [("rejected", "Please add a website first.")]
    assert await publishers_with_slug(runtime, "rejected-co") == []
    assert (await client.get(f"{V1}/me", headers=user.headers)).json()["roles"] == ["user"]
    rejected = await events(runtime, "publisher.application_rejected")
    assert [(e.subject, e.data["reason"]) for e in rejected] == [(application["id"], "Please add a website first.")]


async def test_a_rejection_needs_a_reason(client: httpx.AsyncClient, user: Actor, admin: Actor) -> None:
    application = await applied(client, user)
    for body in (None, {}, {"reason": ""}, {"reason": "no"}):
        response = await client.post(f"{V1}/admin/publisher-applications/{application['id']}/reject",
                                     headers=admin.headers, json=body)
        assert response.status_code == 422, body
    mine = (await client.get(f"{V1}/me/publisher-applications", headers=user.headers)).json()["items"]
    assert mine[0]["status"] == "pending"


async def test_approval_of_a_slug_taken_meanwhile_is_refused_and_changes_nothing(
        client: httpx.AsyncClient, runtime: Runtime, actors: Actors, user: Actor, admin: Actor) -> None:
    application = await applied(client, user, "meanwhile")
    squatter = await actors.create()
    await actors.publisher(squatter, slug="meanwhile")
    response = await approve(client, admin, application["id"])
    assert response.status_code == 409
    assert response.json()["code"] == "slug_taken"
    mine = (await client.get(f"{V1}/me/publisher-applications", headers=user.headers)).json()["items"]
    assert mine[0]["status"] == "pending"
    assert (await client.get(f"{V1}/me", headers=user.headers)).json()["roles"] == ["user"]
    assert await events(runtime, "publisher.application_approved") == []


async def test_deciding_an_unknown_application_is_not_found(client: httpx.AsyncClient, admin: Actor) -> None:
    unknown = uuid.uuid4()
    for response in (await approve(client, admin, str(unknown)), await reject(client, admin, str(unknown))):
        assert response.status_code == 404
        assert response.json()["code"] == "application_not_found"


async def test_a_decision_is_audited_once(
        client: httpx.AsyncClient, runtime: Runtime, actors: Actors, admin: Actor) -> None:
    first, second = await actors.create(), await actors.create()
    approved, rejected = await applied(client, first), await applied(client, second)
    await approve(client, admin, approved["id"])
    await reject(client, admin, rejected["id"], "Duplicate of another publisher.")
    async with runtime.db.read_session() as session:
        rows = list(await session.scalars(select(AuditEntry).where(AuditEntry.actor_id == uuid.UUID(admin.id))))
    assert sorted((row.action, row.resource_id) for row in rows) == sorted([
        ("publisher_application:approve", approved["id"]), ("publisher_application:reject", rejected["id"])])


# --- the admin's queue ------------------------------------------------------------------------

async def test_admins_list_applications_by_status(
        client: httpx.AsyncClient, actors: Actors, admin: Actor) -> None:
    applicants = [await actors.create() for _ in range(3)]
    ids = [(await applied(client, a))["id"] for a in applicants]
    await approve(client, admin, ids[0])
    await reject(client, admin, ids[1])

    async def listed(status: str | None) -> list[str]:
        response = await client.get(f"{V1}/admin/publisher-applications", headers=admin.headers,
                                    params={"status": status} if status else {})
        assert response.status_code == 200, response.text
        return [a["id"] for a in response.json()["items"]]

    assert await listed("approved") == [ids[0]]
    assert await listed("rejected") == [ids[1]]
    assert await listed("pending") == [ids[2]]
    assert await listed(None) == list(reversed(ids)), "newest first"
    bad = await client.get(f"{V1}/admin/publisher-applications", headers=admin.headers, params={"status": "maybe"})
    assert bad.status_code == 422


async def test_application_pages_have_no_duplicates_and_no_gaps(
        client: httpx.AsyncClient, actors: Actors, admin: Actor) -> None:
    ids = [(await applied(client, await actors.create()))["id"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        response = await client.get(f"{V1}/admin/publisher-applications", headers=admin.headers,
                                    params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        page = response.json()
        seen += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
