"""The user's own state as a feed (S2): full state, deltas, revocations, reads, 304."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from mercato.app.runtime import Runtime
from mercato.kit.clock import utcnow
from mercato.library import service as library
from mercato.models import Entitlement, Installation, InstallTask, Notification
from mercato.notifications import service as notifications
from mercato.sync import user_feed
from tests.support.actors import Actor, Actors
from tests.support.orders import Seller, fund, item, place, quiet, until
from tests.sync.support import V1


async def sync_me(client: httpx.AsyncClient, who: Actor, cursor: str | None = None,
                  **headers: str) -> httpx.Response:
    return await client.get(f"{V1}/sync/me", params={"cursor": cursor} if cursor else None,
                            headers={**who.headers, **headers})


async def owned(runtime: Runtime, seller: Seller, user: Actor, *, minutes_ago: float = 0) -> tuple[str, str]:
    """A listing in the user's library and a notification to them, dated ``minutes_ago``."""
    listing = await seller.listing(digital=0)
    at = utcnow() - timedelta(minutes=minutes_ago)
    async with runtime.db.transaction() as session:
        entitlement = await library.grant(session, user_id=uuid.UUID(user.id), listing_id=uuid.UUID(listing["id"]),
                                          source="free")
        [note] = await notifications.notify(session, event_id=uuid.uuid4(), user_ids=[uuid.UUID(user.id)],
                                            kind="listing.published", title="Synced")
        if minutes_ago:  # the time the rows were written is what the feed orders by
            await session.execute(update(Entitlement).where(Entitlement.id == entitlement.id).values(granted_at=at))
            await session.execute(update(Notification).where(Notification.id == note.id).values(created_at=at))
        return str(entitlement.id), str(note.id)


@pytest.fixture
async def seller(client: httpx.AsyncClient, actors: Actors, runtime: Runtime) -> Seller:
    return await Seller.open(client, actors, runtime)


async def test_the_first_sync_is_the_whole_state_and_then_only_changes_come(
        client: httpx.AsyncClient, seller: Seller, user: Actor, actors: Actors, runtime: Runtime) -> None:
    entitlement_id, note_id = await owned(runtime, seller, user, minutes_ago=5)
    stranger = await actors.create()
    await owned(runtime, seller, stranger, minutes_ago=5)

    first = await sync_me(client, user)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["reset"] is True and body["more"] is False
    assert [e["id"] for e in body["library"]] == [entitlement_id] and body["library"][0]["active"] is True
    assert [n["id"] for n in body["notifications"]] == [note_id]
    assert body["orders"] == [] and body["installations"] == [] and body["tasks"] == []

    again = await sync_me(client, user, body["cursor"])
    assert again.json()["library"] == [] and again.json()["notifications"] == [] and again.json()["reset"] is False
    unchanged = await sync_me(client, user, body["cursor"], **{"If-None-Match": again.headers["etag"]})
    assert unchanged.status_code == 304

    assert (await client.post(f"{V1}/notifications/{note_id}/read", headers=user.headers)).status_code == 200
    async with runtime.db.transaction() as session:
        [listing_id] = [e["listing_id"] for e in body["library"]]
        assert await library.revoke(session, user_id=uuid.UUID(user.id), listing_id=uuid.UUID(listing_id),
                                    reason="refunded")
    changed = await sync_me(client, user, body["cursor"], **{"If-None-Match": again.headers["etag"]})
    assert changed.status_code == 200
    assert [(e["id"], e["active"]) for e in changed.json()["library"]] == [(entitlement_id, False)]
    assert [(n["id"], n["read"]) for n in changed.json()["notifications"]] == [(note_id, True)]


async def test_orders_come_with_every_status_change(client: httpx.AsyncClient, seller: Seller, user: Actor,
                                                    runtime: Runtime) -> None:
    listing = await seller.listing(digital=300)
    await fund(runtime, user, 300)
    placed = await place(client, user, [item(listing)])
    await until(runtime, placed.json()["id"], "completed")
    await quiet(runtime)
    orders: list[dict[str, Any]] = (await sync_me(client, user)).json()["orders"]
    assert [(o["id"], o["status"]) for o in orders] == [(placed.json()["id"], "completed")]


async def test_changes_within_the_settle_window_come_again(seller: Seller, user: Actor, runtime: Runtime) -> None:
    """A change this recent may still be joined by one committed late with an earlier time:
    the cursor stays before it, so it is sent again (clients upsert by id)."""
    entitlement_id, _ = await owned(runtime, seller, user)
    async with runtime.db.read_session() as session:
        first = await user_feed.page(session, user_id=uuid.UUID(user.id), positions=None, limit=10)
        again = await user_feed.page(session, user_id=uuid.UUID(user.id),
                                     positions=user_feed.decode_cursor(first.cursor), limit=10)
        later = await user_feed.page(session, user_id=uuid.UUID(user.id),
                                     positions=user_feed.decode_cursor(first.cursor), limit=10,
                                     now=utcnow() + timedelta(seconds=user_feed.SETTLE_SECONDS * 2))
        settled = await user_feed.page(session, user_id=uuid.UUID(user.id),
                                       positions=user_feed.decode_cursor(later.cursor), limit=10)
    assert [str(e.id) for e in again.library] == [entitlement_id]
    assert [str(e.id) for e in later.library] == [entitlement_id] and settled.library == []


async def test_a_kind_with_more_changes_than_the_limit_pages(seller: Seller, user: Actor, runtime: Runtime) -> None:
    ids = [(await owned(runtime, seller, user, minutes_ago=10 - n))[0] for n in range(3)]
    async with runtime.db.read_session() as session:
        first = await user_feed.page(session, user_id=uuid.UUID(user.id), positions=None, limit=2)
        rest = await user_feed.page(session, user_id=uuid.UUID(user.id),
                                    positions=user_feed.decode_cursor(first.cursor), limit=2)
    assert first.more is True and rest.more is False
    assert [str(e.id) for e in first.library + rest.library] == ids


@pytest.mark.parametrize("cursor", ["garbage!", "eyJ2IjoyLCJwIjp7fX0", "eyJ2IjoxLCJwIjp7InoiOlsiMjAyNiIsIngiXX19"],
                         ids=["garbage", "other-version", "unknown-kind"])
async def test_a_cursor_the_feed_did_not_give_is_refused(client: httpx.AsyncClient, user: Actor, cursor: str) -> None:
    response = await sync_me(client, user, cursor)
    assert response.status_code == 422 and response.json()["code"] == "invalid_cursor"


async def test_the_user_feed_needs_a_signed_in_caller(client: httpx.AsyncClient) -> None:
    assert (await client.get(f"{V1}/sync/me")).status_code == 401


async def test_installations_and_tasks_of_the_caller_come_with_their_changes(
        client: httpx.AsyncClient, seller: Seller, user: Actor, actors: Actors, runtime: Runtime) -> None:
    """Installs are arranged as rows (the install flow itself is tested in tests/installs):
    an instance registered through the API, an installation and its task on it."""
    listing = await seller.listing(digital=0)
    instance = await client.post(f"{V1}/instances", headers=user.headers, json={"name": "Laptop"})
    assert instance.status_code == 201, instance.text
    now = utcnow() - timedelta(minutes=1)
    async with runtime.db.transaction() as session:
        installation = Installation(instance_id=uuid.UUID(instance.json()["id"]), owner_id=uuid.UUID(user.id),
                                    listing_id=uuid.UUID(listing["id"]), name="notes", active_name="notes",
                                    state="installing", config={}, created_at=now, updated_at=now)
        session.add(installation)
        await session.flush()
        task = InstallTask(instance_id=installation.instance_id, installation_id=installation.id,
                           owner_id=installation.owner_id, kind="install", state="queued", version="1.0.0",
                           queued_at=now, created_at=now, updated_at=now)
        session.add(task)
    first = (await sync_me(client, user)).json()
    assert [(i["id"], i["state"]) for i in first["installations"]] == [(str(installation.id), "installing")]
    assert [(t["id"], t["state"]) for t in first["tasks"]] == [(str(task.id), "queued")]
    stranger = await actors.create()
    assert (await sync_me(client, stranger)).json()["installations"] == []

    async with runtime.db.transaction() as session:
        await session.execute(update(Installation).where(Installation.id == installation.id)
                              .values(state="installed", version="1.0.0"))
    changed = (await sync_me(client, user, first["cursor"])).json()
    assert [(i["id"], i["state"]) for i in changed["installations"]] == [(str(installation.id), "installed")]
    assert changed["tasks"] == []
