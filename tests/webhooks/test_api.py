"""E2 webhooks API: who may subscribe what, secrets shown once, visibility, changes, audit."""

from __future__ import annotations

import base64
import uuid

import httpx
import pytest
from sqlalchemy import select

from mercato.app.runtime import Runtime
from mercato.models import AuditEntry
from tests.support.actors import Actor, Actors
from tests.support.receivers import Receiver
from tests.webhooks.support import V1, World


async def audit_actions(runtime: Runtime, resource_id: str) -> list[str]:
    async with runtime.db.read_session() as session:
        return list(await session.scalars(select(AuditEntry.action).where(AuditEntry.resource_id == resource_id)
                                          .order_by(AuditEntry.at)))


async def test_owner_creates_a_publisher_webhook_and_sees_the_secret_once(
        world: World, receiver: Receiver, client: httpx.AsyncClient) -> None:
    response = await world.create(receiver.url(), event_types=["publisher.updated", "publisher.member_added"])
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["secret"].startswith("whsec_")
    assert len(base64.b64decode(body["secret"].removeprefix("whsec_"))) >= 24
    assert body["url"] == receiver.url() and body["active"] is True
    assert body["event_types"] == ["publisher.updated", "publisher.member_added"]
    listed = (await client.get(f"{V1}/webhooks", headers=world.owner.headers)).json()
    assert [w["id"] for w in listed["items"]] == [body["id"]]
    assert "secret" not in listed["items"][0]
    fetched = (await client.get(f"{V1}/webhooks/{body['id']}", headers=world.owner.headers)).json()
    assert "secret" not in fetched and body["secret"] not in str(fetched)


async def test_a_user_without_a_publisher_may_not_create_webhooks(
        client: httpx.AsyncClient, user: Actor, receiver: Receiver) -> None:
    response = await client.post(f"{V1}/webhooks", headers=user.headers,
                                 json={"url": receiver.url(), "event_types": ["*"]})
    assert response.status_code == 403


async def test_a_developer_must_name_a_publisher(world: World, receiver: Receiver) -> None:
    response = await world.create(receiver.url(), publisher=None)
    assert response.status_code == 403, response.text


async def test_a_developer_may_not_subscribe_to_another_publishers_events(
        world: World, actors: Actors, receiver: Receiver) -> None:
    other = await actors.create()
    theirs = await actors.publisher(other)
    response = await world.create(receiver.url(), publisher=theirs["slug"])
    assert response.status_code == 403, response.text


async def test_a_plain_member_of_the_publisher_may_not_subscribe(
        world: World, actors: Actors, client: httpx.AsyncClient, receiver: Receiver) -> None:
    member = await actors.create()
    added = await client.post(f"{V1}/publishers/{world.slug}/members", headers=world.owner.headers,
                              json={"email": member.email, "role": "member"})
    assert added.status_code == 200, added.text
    member = await actors.login(member.email, member.password, user_id=member.id)
    assert (await world.create(receiver.url(), actor=member)).status_code == 403


async def test_unknown_event_types_are_refused(world: World, receiver: Receiver) -> None:
    response = await world.create(receiver.url(), event_types=["publisher.updated", "order.teleported"])
    assert response.status_code == 422
    assert response.json()["code"] == "unknown_event_type"
    assert response.json()["errors"][0]["loc"] == ["body", "event_types", 1]


async def test_unknown_publisher_is_404(world: World, receiver: Receiver) -> None:
    assert (await world.create(receiver.url(), publisher="no-such-publisher")).status_code == 404


async def test_admins_may_create_store_wide_webhooks_and_see_every_webhook(
        world: World, admin: Actor, client: httpx.AsyncClient, receiver: Receiver) -> None:
    mine = (await world.create(receiver.url())).json()
    store_wide = await world.create(receiver.url("/all"), event_types=["*"], actor=admin, publisher=None)
    assert store_wide.status_code == 201, store_wide.text
    assert store_wide.json()["publisher_id"] is None
    listed = (await client.get(f"{V1}/webhooks", headers=admin.headers)).json()
    assert {mine["id"], store_wide.json()["id"]} <= {w["id"] for w in listed["items"]}
    own = (await client.get(f"{V1}/webhooks", headers=world.owner.headers)).json()
    assert [w["id"] for w in own["items"]] == [mine["id"]]


async def test_another_developer_can_neither_see_nor_touch_my_webhook(
        world: World, actors: Actors, client: httpx.AsyncClient, receiver: Receiver) -> None:
    mine = (await world.create(receiver.url())).json()
    other = await actors.create()
    await actors.publisher(other)
    other = await actors.login(other.email, other.password, user_id=other.id)
    assert (await client.get(f"{V1}/webhooks", headers=other.headers)).json()["items"] == []
    for method, path, body in [("GET", "", None), ("DELETE", "", None), ("PATCH", "", {"active": False}),
                               ("GET", "/deliveries", None), ("POST", "/rotate-secret", None)]:
        response = await client.request(method, f"{V1}/webhooks/{mine['id']}{path}", headers=other.headers,
                                        json=body)
        assert response.status_code == 404, (method, path, response.text)
    assert (await client.get(f"{V1}/webhooks/{mine['id']}", headers=world.owner.headers)).status_code == 200


async def test_unknown_ids_are_404(world: World, client: httpx.AsyncClient) -> None:
    response = await client.delete(f"{V1}/webhooks/{uuid.uuid4()}", headers=world.owner.headers)
    assert response.status_code == 404
    assert response.json()["code"] == "webhook_not_found"


async def test_delete_removes_the_webhook_and_is_audited(
        world: World, client: httpx.AsyncClient, receiver: Receiver, runtime: Runtime) -> None:
    created = (await world.create(receiver.url())).json()
    assert (await client.delete(f"{V1}/webhooks/{created['id']}", headers=world.owner.headers)).status_code == 204
    assert (await client.get(f"{V1}/webhooks/{created['id']}", headers=world.owner.headers)).status_code == 404
    assert await audit_actions(runtime, created["id"]) == ["webhook:create", "webhook:delete"]


async def test_rotation_returns_a_new_secret_once_and_is_audited(
        world: World, client: httpx.AsyncClient, receiver: Receiver, runtime: Runtime) -> None:
    created = (await world.create(receiver.url())).json()
    rotated = await client.post(f"{V1}/webhooks/{created['id']}/rotate-secret", headers=world.owner.headers)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"].startswith("whsec_") and rotated.json()["secret"] != created["secret"]
    assert rotated.json()["previous_secret_expires_at"] is not None
    entries = await audit_actions(runtime, created["id"])
    assert entries == ["webhook:create", "webhook:rotate_secret"]
    async with runtime.db.read_session() as session:
        after = await session.scalar(select(AuditEntry.after).where(AuditEntry.action == "webhook:rotate_secret"))
    assert created["secret"] not in str(after) and rotated.json()["secret"] not in str(after)


async def test_patch_changes_url_and_types_and_checks_them(
        world: World, client: httpx.AsyncClient, receiver: Receiver, runtime: Runtime) -> None:
    created = (await world.create(receiver.url())).json()
    path = f"{V1}/webhooks/{created['id']}"
    changed = await client.patch(path, headers=world.owner.headers,
                                 json={"url": receiver.url("/v2"), "event_types": ["*"]})
    assert changed.status_code == 200, changed.text
    assert changed.json()["url"] == receiver.url("/v2") and changed.json()["event_types"] == ["*"]
    refused = await client.patch(path, headers=world.owner.headers, json={"url": "http://10.0.0.1/hook"})
    assert refused.status_code == 422 and refused.json()["code"] == "url_not_allowed"
    unknown = await client.patch(path, headers=world.owner.headers, json={"event_types": ["nope.nothing"]})
    assert unknown.status_code == 422
    mass = await client.patch(path, headers=world.owner.headers, json={"consecutive_failures": 0})
    assert mass.status_code == 422
    assert await audit_actions(runtime, created["id"]) == ["webhook:create", "webhook:update"]


async def test_webhooks_per_publisher_are_capped(
        world: World, receiver: Receiver, runtime: Runtime) -> None:
    runtime.settings.webhook_limit = 2
    assert (await world.create(receiver.url("/1"))).status_code == 201
    assert (await world.create(receiver.url("/2"))).status_code == 201
    third = await world.create(receiver.url("/3"))
    assert third.status_code == 409 and third.json()["code"] == "webhook_limit_reached"


@pytest.mark.parametrize("limit", [1, 2])
async def test_webhooks_list_pages_with_a_cursor(
        world: World, client: httpx.AsyncClient, receiver: Receiver, limit: int) -> None:
    ids = [(await world.create(receiver.url(f"/{n}"))).json()["id"] for n in range(3)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(f"{V1}/webhooks", headers=world.owner.headers, params=params)).json()
        seen += [w["id"] for w in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))


async def test_a_token_scoped_to_one_publisher_does_not_reach_another_publishers_webhook(
        world: World, receiver: Receiver, client: httpx.AsyncClient, actors: Actors) -> None:
    """Issue 11 item 6: webhook:manage@p1 reached the webhooks of p2, another publisher of the same owner."""
    second = await actors.publisher(world.owner)
    owner = await actors.login(world.owner.email, world.owner.password, user_id=world.owner.id)
    mine = (await world.create(receiver.url(), actor=owner)).json()
    other = (await world.create(receiver.url(), actor=owner, publisher=second["slug"])).json()
    made = await client.post(f"{V1}/me/tokens", headers=owner.headers,
                             json={"name": "ci", "scopes": [f"webhook:manage@{world.slug}"]})
    assert made.status_code == 201, made.text
    token = {"Authorization": f"Bearer {made.json()['token']}"}
    assert (await client.get(f"{V1}/webhooks/{mine['id']}", headers=token)).status_code == 200
    assert (await client.get(f"{V1}/webhooks/{other['id']}", headers=token)).status_code == 404
    changed = await client.patch(f"{V1}/webhooks/{other['id']}", headers=token, json={"active": False})
    assert changed.status_code == 404
    assert (await client.delete(f"{V1}/webhooks/{other['id']}", headers=token)).status_code == 404
    listed = (await client.get(f"{V1}/webhooks", headers=token)).json()["items"]
    assert [w["id"] for w in listed] == [mine["id"]]
    created = await client.post(f"{V1}/webhooks", headers=token, json={
        "url": receiver.url(), "event_types": ["publisher.updated"], "publisher": second["slug"]})
    assert created.status_code == 403, created.text
    assert (await client.get(f"{V1}/webhooks/{other['id']}", headers=owner.headers)).json()["active"] is True
