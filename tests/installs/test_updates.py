"""I6: update notices when a newer compatible version is approved, and automatic upgrades;
task events reach the owner's live stream (they carry the owner's ``user_id``)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from mercato.app.runtime import Runtime
from tests.catalog.support import Shop
from tests.installs.support import (
    V1,
    installation,
    installed,
    published,
    register,
    release,
)
from tests.library.support import eventually
from tests.support.actors import Actor, Actors


@pytest.fixture
async def shop(client: httpx.AsyncClient, actors: Actors) -> Shop:
    return await Shop.open(client, actors)


async def notices(client: httpx.AsyncClient, owner: Actor) -> list[dict]:  # type: ignore[type-arg]
    response = await client.get(f"{V1}/notifications", headers=owner.headers)
    assert response.status_code == 200, response.text
    return [n for n in response.json()["items"] if n["kind"] == "installation.update_available"]


async def test_owners_hear_of_a_newer_version_and_auto_upgrade_queues_it(
        client: httpx.AsyncClient, shop: Shop, user: Actor, runtime: Runtime) -> None:
    listing = await published(shop)
    agent = await register(client, user)
    manual = await installed(client, user, agent, listing["id"], name="manual")
    automatic = await installed(client, user, agent, listing["id"], name="automatic")
    patched = await client.patch(f"{V1}/installations/{automatic['id']}", headers=user.headers,
                                 json={"auto_upgrade": True})
    assert patched.status_code == 200 and patched.json()["auto_upgrade"] is True
    await release(shop, listing["slug"], "1.2.0")
    told = await eventually(lambda: notices(client, user), lambda found: len(found) == 2)
    assert {n["data"]["installation_id"] for n in told} == {manual["id"], automatic["id"]}
    queued = (await client.get(f"{V1}/tasks", headers=user.headers, params={"state": "queued"})).json()["items"]
    assert [(t["installation_id"], t["kind"], t["version"]) for t in queued] == [(automatic["id"], "upgrade", "1.2.0")]
    await agent.complete()
    assert (await installation(client, user, automatic["id"]))["version"] == "1.2.0"
    assert (await installation(client, user, manual["id"]))["version"] == "1.0.0"


async def test_an_incompatible_version_is_not_offered(client: httpx.AsyncClient, shop: Shop, user: Actor,
                                                      actors: Actors) -> None:
    listing = await published(shop)
    agent = await register(client, user)  # linux-x64
    await installed(client, user, agent, listing["id"])
    other = await actors.create()
    other_agent = await register(client, other, name="mac")
    await installed(client, other, other_agent, listing["id"])
    await release(shop, listing["slug"], "1.3.0", platforms=("linux-x64",))
    await other_agent.heartbeat(platform="macos-arm64")
    await eventually(lambda: notices(client, user), lambda found: len(found) == 1)
    assert await notices(client, other) == []


async def test_task_progress_is_in_the_owners_event_stream(client: httpx.AsyncClient, shop: Shop, user: Actor,
                                                            actors: Actors, runtime: Runtime) -> None:
    """The SSE stream (``GET /events/stream``) sends the owner's events; these are the rows it
    replays for the owner, and the live push sends the same by their ``user_id``."""
    from mercato.bus import repository as bus_repository

    listing = await published(shop)
    agent = await register(client, user)
    response = await client.post(f"{V1}/instances/{agent.instance_id}/installations", headers=user.headers,
                                 json={"listing_id": listing["id"]})
    [handed] = await agent.fetch()
    await agent.progress(handed["id"], 25, "downloading")
    await agent.result(handed["id"])
    stranger = await actors.create()
    async with runtime.db.read_session() as session:
        mine = await bus_repository.events_for_user_after(session, uuid.UUID(user.id), 0, limit=500)
        theirs = await bus_repository.events_for_user_after(session, uuid.UUID(stranger.id), 0,
                                                            limit=500)
    seen = [(row.type, row.data.get("progress")) for row in mine if row.subject == response.json()["id"]]
    assert seen == [("task.queued", None), ("task.dispatched", None), ("task.progress", 25), ("task.succeeded", None)]
    assert not [row for row in theirs if row.type.startswith("task.")]


async def test_a_pre_release_is_neither_offered_nor_upgraded_to_unless_asked(
        client: httpx.AsyncClient, shop: Shop, user: Actor, runtime: Runtime) -> None:
    from tests.support.bus import settled

    listing = await published(shop)
    agent = await register(client, user)
    manual = await installed(client, user, agent, listing["id"], name="manual")
    automatic = await installed(client, user, agent, listing["id"], name="automatic")
    assert (await client.patch(f"{V1}/installations/{automatic['id']}", headers=user.headers,
                               json={"auto_upgrade": True})).status_code == 200
    await release(shop, listing["slug"], "2.0.0-rc.1")
    await settled(runtime)
    assert await notices(client, user) == []
    assert (await client.get(f"{V1}/tasks", headers=user.headers, params={"state": "queued"})).json()["items"] == []
    latest = await client.post(f"{V1}/installations/{manual['id']}/upgrade", headers=user.headers, json={})
    assert latest.status_code == 409 and latest.json()["code"] == "already_latest"  # latest is still 1.0.0
    asked = await client.post(f"{V1}/installations/{manual['id']}/upgrade", headers=user.headers,
                              json={"version": "2.0.0-rc.1"})
    assert asked.status_code == 202 and asked.json()["version"] == "2.0.0-rc.1"
