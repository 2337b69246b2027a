"""Arranging installs: packages with requirements and settings, an instance, and an agent
that speaks the protocol with its instance token (httpx, in-process)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from tests.catalog.support import Shop, manifest_text, package_bytes
from tests.support.actors import Actor

V1 = "/api/v1"
CONFIGURED = ('\n[requirements]\nmemory_mb = 256\ndisk_mb = 40\n\n[config]\nschema = { type = "object", '
              'required = ["workspace"], properties = { workspace = { type = "string", minLength = 1 }, '
              'theme = { type = "string", enum = ["light", "dark"], default = "light" } } }\n')
LINUX = {"platform": "linux-x64", "host_version": "2.1.0", "resources": {"memory_mb": 4096, "disk_mb": 10000}}


async def release(shop: Shop, slug: str, version: str, *, extra: str = "",
                  platforms: tuple[str, ...] = ("any",)) -> None:
    """Upload, submit and approve a version of the listing."""
    data = package_bytes(slug, version, manifest=manifest_text(slug, version, platforms=platforms, extra=extra))
    uploaded = await shop.upload(slug, version, data=data)
    assert uploaded.status_code == 201, uploaded.text
    await shop.submit(slug, version)
    await shop.decide(slug, version)


async def published(shop: Shop, *, version: str = "1.0.0", extra: str = "",
                    platforms: tuple[str, ...] = ("any",), **fields: Any) -> dict[str, Any]:
    listing = await shop.listing(**fields)
    await release(shop, listing["slug"], version, extra=extra, platforms=platforms)
    return listing


@dataclass
class Agent:
    """``mercato agent`` as far as the server can tell: the instance token and the protocol."""

    client: httpx.AsyncClient
    instance_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def heartbeat(self, inventory: list[dict[str, Any]] | None = None, **report: Any) -> httpx.Response:
        body = {**LINUX, **report, "inventory": inventory or []}
        return await self.client.post(f"{V1}/agent/heartbeat", headers=self.headers, json=body)

    async def fetch(self, wait: float = 0) -> list[dict[str, Any]]:
        response = await self.client.get(f"{V1}/agent/tasks", headers=self.headers, params={"wait": wait})
        assert response.status_code == 200, response.text
        return response.json()["items"]  # type: ignore[no-any-return]

    async def progress(self, task_id: str, percent: int, message: str = "working") -> httpx.Response:
        return await self.client.post(f"{V1}/agent/tasks/{task_id}/progress", headers=self.headers,
                                      json={"percent": percent, "message": message})

    async def result(self, task_id: str, outcome: str = "succeeded", message: str = "done") -> httpx.Response:
        return await self.client.post(f"{V1}/agent/tasks/{task_id}/result", headers=self.headers,
                                      json={"outcome": outcome, "message": message})

    async def complete(self, outcome: str = "succeeded") -> list[dict[str, Any]]:
        """Fetch what is queued and finish each task with ``outcome``."""
        tasks = await self.fetch()
        for task in tasks:
            assert (await self.progress(task["id"], 50)).status_code == 200
            answer = await self.result(task["id"], outcome)
            assert answer.status_code == 200, answer.text
        return tasks


async def register(client: httpx.AsyncClient, owner: Actor, *, name: str = "laptop",
                   report: bool = True) -> Agent:
    response = await client.post(f"{V1}/instances", headers=owner.headers, json={"name": name})
    assert response.status_code == 201, response.text
    agent = Agent(client, response.json()["id"], response.json()["token"])
    if report:
        answer = await agent.heartbeat()
        assert answer.status_code == 200, answer.text
    return agent


async def install(client: httpx.AsyncClient, owner: Actor, agent: Agent, listing_id: str,
                  **body: Any) -> httpx.Response:
    return await client.post(f"{V1}/instances/{agent.instance_id}/installations", headers=owner.headers,
                             json={"listing_id": listing_id, **body})


async def installed(client: httpx.AsyncClient, owner: Actor, agent: Agent, listing_id: str,
                    **body: Any) -> dict[str, Any]:
    """An installation the agent installed; returns the installation."""
    response = await install(client, owner, agent, listing_id, **body)
    assert response.status_code == 202, response.text
    await agent.complete()
    return await installation(client, owner, response.json()["installation_id"])


async def installation(client: httpx.AsyncClient, owner: Actor, installation_id: str) -> dict[str, Any]:
    response = await client.get(f"{V1}/installations/{installation_id}", headers=owner.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def task(client: httpx.AsyncClient, owner: Actor, task_id: str) -> dict[str, Any]:
    response = await client.get(f"{V1}/tasks/{task_id}", headers=owner.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def unknown() -> str:
    return str(uuid.uuid4())
