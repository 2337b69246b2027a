"""The vocabulary of the access matrix (``test_matrix.py`` and its ``matrix_rows_*`` files):
the principals, the world each row runs in, the expected statuses per principal, how a row
makes its request, and the row itself."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from mercato.app.runtime import Runtime
from tests.support.actors import DEFAULT_PASSWORD, Actor, Actors

V1 = "/api/v1"
ANON, USER, DEV, OTHER_DEV, REVIEWER, ADMIN, SUPER = (
    "anonymous", "user", "developer", "other_developer", "reviewer", "marketplace_admin", "super_admin")
PRINCIPALS = (ANON, USER, DEV, OTHER_DEV, REVIEWER, ADMIN, SUPER)

# --- the world every row runs in ------------------------------------------------------------

@dataclass
class World:
    client: httpx.AsyncClient
    actors: Actors
    runtime: Runtime
    who: dict[str, Actor] = field(default_factory=dict)
    mine: str = ""      # slug of the developer's publisher
    theirs: str = ""    # slug of the other developer's publisher

    @property
    def super_admin(self) -> Actor:
        return self.who[SUPER]

    async def new_account(self) -> tuple[str, str]:
        """A fresh account (id, email) that is none of the principals."""
        from mercato.accounts import service

        email = f"someone-{uuid.uuid4().hex[:8]}@example.org"
        async with self.runtime.db.transaction() as session:
            user = await service.create_user(session, self.runtime, email=email, password=DEFAULT_PASSWORD)
        return str(user.id), email

    async def pending_application(self) -> str:
        applicant = await self.actors.create()
        response = await self.client.post(f"{V1}/publisher-applications", headers=applicant.headers,
                                          json={"slug": slug(), "name": "Applicant Co"})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def api_token_of(self, actor: Actor) -> str:
        response = await self.client.post(f"{V1}/me/tokens", headers=actor.headers, json={"name": "cli"})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


async def build_world(client: httpx.AsyncClient, actors: Actors, runtime: Runtime) -> World:
    world = World(client, actors, runtime)
    world.who = {
        USER: await actors.create(),
        DEV: await actors.create(),
        OTHER_DEV: await actors.create(),
        REVIEWER: await actors.create("reviewer"),
        ADMIN: await actors.create("marketplace_admin"),
        SUPER: await actors.create("super_admin"),
    }
    for name, owner in (("mine", DEV), ("theirs", OTHER_DEV)):
        publisher_slug = f"{name}-{uuid.uuid4().hex[:6]}"
        response = await client.post(f"{V1}/publishers", headers=world.super_admin.headers, json={
            "slug": publisher_slug, "name": f"Publisher {name}", "owner_email": world.who[owner].email})
        assert response.status_code == 201, response.text
        setattr(world, name, publisher_slug)
    return world


def slug() -> str:
    return f"s-{uuid.uuid4().hex[:10]}"


def email() -> str:
    return f"new-{uuid.uuid4().hex[:8]}@example.org"


# --- expectations -----------------------------------------------------------------------------

def everyone(status: int) -> dict[str, int]:
    return dict.fromkeys(PRINCIPALS, status)


def signed_in(status: int) -> dict[str, int]:
    return {**everyone(status), ANON: 401}


def only(*allowed: str, status: int) -> dict[str, int]:
    """``allowed`` get ``status``; anonymous 401; every other principal 403."""
    return {**everyone(403), ANON: 401, **dict.fromkeys(allowed, status)}


ADMINS = (ADMIN, SUPER)

# --- requests ----------------------------------------------------------------------------------

Make = Callable[[World, str], Awaitable[dict[str, Any]]]


def static(path: str, **kwargs: Any) -> Make:
    async def make(world: World, who: str) -> dict[str, Any]:
        return {"url": path, **kwargs}

    return make


def dynamic(build: Callable[[World, str], Any]) -> Make:
    async def make(world: World, who: str) -> dict[str, Any]:
        out = build(world, who)
        return await out if isinstance(out, Awaitable) else out  # type: ignore[no-any-return]

    return make


def caller(world: World, who: str) -> Actor:
    """The actor whose own resources an anonymous request would touch."""
    return world.who[USER if who == ANON else who]


@dataclass(frozen=True)
class Row:
    name: str
    method: str
    route: str  # the path template as route_policies() reports it
    expect: dict[str, int]
    make: Make
    stream: bool = False  # an endless response: only its status and headers are read
