"""Arranging listings, entitlements and reviews for the library, ratings, notifications
and stats tests: through the API and the services."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from sqlalchemy import select

from mercato.app.runtime import Runtime
from mercato.catalog import repository as catalog_repository
from mercato.catalog import service as catalog
from mercato.kit.clock import utcnow
from mercato.library import service as library
from mercato.models import AuditEntry, Listing, OutboxEvent
from tests.support.actors import Actor, Actors

V1 = "/api/v1"
T = TypeVar("T")


def new_slug(prefix: str = "app") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def create_listing(client: httpx.AsyncClient, actor: Actor, publisher: str, *, price: int = 0,
                         slug: str | None = None, name: str = "Test Listing") -> dict[str, Any]:
    """A draft listing through the API (price 0: free)."""
    offers = [{"delivery": "digital", "price": {"amount": price, "currency": "USD"}}]
    response = await client.post(f"{V1}/listings", headers=actor.headers, json={
        "publisher": publisher, "slug": slug or new_slug(), "name": name, "kind": "app", "offers": offers})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def publish_listing(runtime: Runtime, listing_id: str) -> None:
    """Draft -> published without the upload/submit/approve flow (the catalog's and review's
    business, tested there): the catalog repository's guarded transition, as approval does."""
    async with runtime.db.transaction() as session:
        now = utcnow()
        moved = await catalog_repository.transition(session, uuid.UUID(listing_id), from_=("draft",),
                                                    to="published", at=now, published_at=now)
        assert moved, "the listing was not a draft"


async def grant(runtime: Runtime, user: Actor, listing_id: str, source: str = "purchase") -> None:
    """What the order saga (purchase) does for a buyer, through the library service."""
    async with runtime.db.transaction() as session:
        await library.grant(session, user_id=uuid.UUID(user.id), listing_id=uuid.UUID(listing_id), source=source)


async def listing_row(runtime: Runtime, listing_id: str) -> Listing:
    async with runtime.db.read_session() as session:
        return await catalog.get_by_id(session, uuid.UUID(listing_id))


async def events(runtime: Runtime, type_: str) -> list[OutboxEvent]:
    async with runtime.db.read_session() as session:
        return list(await session.scalars(select(OutboxEvent).where(OutboxEvent.type == type_)
                                          .order_by(OutboxEvent.sequence)))


async def audit_rows(runtime: Runtime, action: str) -> list[AuditEntry]:
    async with runtime.db.read_session() as session:
        return list(await session.scalars(select(AuditEntry).where(AuditEntry.action == action)
                                          .order_by(AuditEntry.at)))


async def eventually(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], *, timeout: float = 15.0) -> T:
    """Poll ``probe`` until ``done`` holds (the embedded bus delivers in the background)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if done(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still not there after {timeout}s: {value!r}")
        await asyncio.sleep(0.05)


@dataclass
class Store:
    """A developer owning a publisher (with a second member), an admin, a reviewer."""

    client: httpx.AsyncClient
    actors: Actors
    runtime: Runtime
    developer: Actor
    member: Actor
    publisher: str
    admin: Actor
    reviewer: Actor

    @classmethod
    async def open(cls, client: httpx.AsyncClient, actors: Actors, runtime: Runtime) -> Store:
        developer, admin, member = (await actors.create(), await actors.create("marketplace_admin"),
                                    await actors.create())
        publisher = new_slug("pub")
        created = await client.post(f"{V1}/publishers", headers=admin.headers, json={
            "slug": publisher, "name": f"Publisher {publisher}", "owner_email": developer.email})
        assert created.status_code == 201, created.text
        added = await client.post(f"{V1}/publishers/{publisher}/members", headers=developer.headers,
                                  json={"email": member.email})
        assert added.status_code == 200, added.text
        return cls(client, actors, runtime, developer, member, publisher, admin, await actors.create("reviewer"))

    async def listing(self, *, price: int = 0, published: bool = True, **kwargs: Any) -> dict[str, Any]:
        listing = await create_listing(self.client, self.developer, self.publisher, price=price, **kwargs)
        if published:
            await publish_listing(self.runtime, listing["id"])
        return listing

    async def owner(self, listing: dict[str, Any], **kwargs: Any) -> Actor:
        """A new user who bought the listing."""
        buyer = await self.actors.create(**kwargs)
        await grant(self.runtime, buyer, listing["id"])
        return buyer

    async def review(self, listing: dict[str, Any], actor: Actor, rating: int = 4, **fields: Any) -> dict[str, Any]:
        response = await self.client.post(f"{V1}/listings/{listing['slug']}/reviews", headers=actor.headers,
                                          json={"rating": rating, **fields})
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]
