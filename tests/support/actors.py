"""Signed-in people for tests: ``Actors`` creates accounts with roles through the services and
signs them in through the API (the ``actors``, ``user``, ``admin`` and ``super_admin``
fixtures of ``tests/conftest.py``); an ``Actor`` carries the tokens for its requests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx

from mercato.app.runtime import Runtime

DEFAULT_PASSWORD = "a perfectly fine test password"


@dataclass
class Actor:
    id: str
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


class Actors:
    """Creates accounts with roles through the services and signs them in through the API."""

    def __init__(self, client: httpx.AsyncClient, runtime: Runtime) -> None:
        self.client = client
        self.runtime = runtime

    async def create(self, *roles: str, email: str | None = None, password: str = DEFAULT_PASSWORD) -> Actor:
        from mercato.accounts import service

        email = email or f"{'-'.join(roles) or 'user'}-{uuid.uuid4().hex[:8]}@example.org"
        async with self.runtime.db.transaction() as session:
            user = await service.create_user(session, self.runtime, email=email, password=password,
                                             roles=["user", *roles])
        return await self.login(email, password, user_id=str(user.id))

    async def login(self, email: str, password: str, *, user_id: str | None = None) -> Actor:
        response = await self.client.post("/api/v1/auth/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        body = response.json()
        if user_id is None:
            me = await self.client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
            user_id = me.json()["id"]
        return Actor(id=user_id, email=email, password=password, access_token=body["access_token"],
                     refresh_token=body["refresh_token"])

    async def publisher(self, owner: Actor, slug: str | None = None) -> dict:  # type: ignore[type-arg]
        """A publisher owned by ``owner``, created by a fresh admin through the API."""
        admin = await self.create("marketplace_admin")
        slug = slug or f"pub-{uuid.uuid4().hex[:8]}"
        response = await self.client.post("/api/v1/publishers", headers=admin.headers, json={
            "slug": slug, "name": f"Publisher {slug}", "owner_email": owner.email})
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]
