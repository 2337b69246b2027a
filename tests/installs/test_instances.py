"""I1: instances and their tokens (shown once, stored hashed, good for the agent routes only)."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import select

from mercato.app.runtime import Runtime
from mercato.kit.security import secret_digest
from mercato.models import Instance
from tests.installs.support import V1, register
from tests.support.actors import Actor, Actors


async def test_the_token_is_shown_once_and_stored_only_as_its_digest(client: httpx.AsyncClient, user: Actor,
                                                                     runtime: Runtime) -> None:
    agent = await register(client, user, report=False)
    assert agent.token.startswith("mci_")
    listed = await client.get(f"{V1}/instances", headers=user.headers)
    assert listed.status_code == 200
    [item] = listed.json()["items"]
    assert "token" not in item and agent.token[:12] == item["token_hint"]
    async with runtime.db.read_session() as session:
        row = await session.scalar(select(Instance).where(Instance.id == uuid.UUID(agent.instance_id)))
    assert row is not None and row.token_hash == secret_digest(agent.token) and agent.token not in row.token_hash


async def test_the_instance_token_opens_the_agent_routes_and_nothing_else(client: httpx.AsyncClient,
                                                                          user: Actor) -> None:
    agent = await register(client, user, report=False)
    assert (await agent.heartbeat()).status_code == 200
    assert (await client.get(f"{V1}/me", headers=agent.headers)).status_code == 401
    assert (await client.get(f"{V1}/instances", headers=agent.headers)).status_code == 401
    assert (await client.post(f"{V1}/auth/logout", headers=agent.headers)).status_code == 401


async def test_user_credentials_are_refused_on_the_agent_routes(client: httpx.AsyncClient, user: Actor) -> None:
    assert (await client.get(f"{V1}/agent/tasks", headers=user.headers)).status_code == 403
    assert (await client.get(f"{V1}/agent/tasks")).status_code == 401
    forged = {"Authorization": "Bearer mci_not-a-real-token"}
    assert (await client.get(f"{V1}/agent/tasks", headers=forged)).status_code == 401


async def test_the_heartbeat_records_what_the_agent_reports(client: httpx.AsyncClient, user: Actor) -> None:
    agent = await register(client, user, report=False)
    answer = await agent.heartbeat(platform="linux-arm64", host_version="2.3.0",
                                   resources={"memory_mb": 512, "disk_mb": 80, "host": "pi.local"})
    assert answer.status_code == 200 and answer.json()["queued_tasks"] == 0
    shown = (await client.get(f"{V1}/instances/{agent.instance_id}", headers=user.headers)).json()
    assert (shown["platform"], shown["host_version"]) == ("linux-arm64", "2.3.0")
    assert shown["resources"] == {"memory_mb": 512, "disk_mb": 80, "host": "pi.local"}
    assert shown["reported_at"] is not None


async def test_a_malformed_heartbeat_is_refused_with_a_problem(client: httpx.AsyncClient, user: Actor) -> None:
    agent = await register(client, user, report=False)
    answer = await client.post(f"{V1}/agent/heartbeat", headers=agent.headers,
                               json={"inventory": [{"installation_id": "nope"}], "platform": "amiga"})
    assert answer.status_code == 422 and answer.json()["code"] == "validation_failed"


async def test_deleting_an_instance_revokes_its_token(client: httpx.AsyncClient, user: Actor) -> None:
    agent = await register(client, user)
    deleted = await client.delete(f"{V1}/instances/{agent.instance_id}", headers=user.headers)
    assert deleted.status_code == 204
    assert (await agent.heartbeat()).status_code == 401
    assert (await client.get(f"{V1}/instances/{agent.instance_id}", headers=user.headers)).status_code == 404
    assert (await client.get(f"{V1}/instances", headers=user.headers)).json()["items"] == []


async def test_someone_elses_instance_does_not_exist_for_you(client: httpx.AsyncClient, user: Actor,
                                                             actors: Actors) -> None:
    agent = await register(client, user)
    stranger = await actors.create()
    for method, suffix in (("GET", ""), ("DELETE", ""), ("GET", "/installations")):
        answer = await client.request(method, f"{V1}/instances/{agent.instance_id}{suffix}", headers=stranger.headers)
        assert answer.status_code == 404, (method, suffix)
        assert answer.json()["code"] == "instance_not_found"
    assert (await agent.heartbeat()).status_code == 200


async def test_an_admin_sees_every_instance(client: httpx.AsyncClient, user: Actor, admin: Actor) -> None:
    agent = await register(client, user)
    answer = await client.get(f"{V1}/instances/{agent.instance_id}", headers=admin.headers)
    assert answer.status_code == 200 and answer.json()["id"] == agent.instance_id
