"""Arranging a catalog through the API: publishers, listings, packages, reviews."""

from __future__ import annotations

import io
import tarfile
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.actors import Actor, Actors

V1 = "/api/v1"


def manifest_text(name: str, version: str, *, kind: str = "app", platforms: tuple[str, ...] = ("any",),
                  extra: str = "") -> str:
    quoted = ", ".join(f'"{p}"' for p in platforms)
    return (f'[package]\nname = "{name}"\nversion = "{version}"\nkind = "{kind}"\n'
            f'summary = "A test package."\nlicense = "MIT"\nhomepage = "https://example.org/{name}"\n\n'
            f'[compatibility]\nplatforms = [{quoted}]\n\n[launch]\nentry = "bin/run"\n{extra}')


def package_bytes(name: str, version: str, *, kind: str = "app", platforms: tuple[str, ...] = ("any",),
                  files: dict[str, bytes] | None = None, manifest: str | None = None) -> bytes:
    """A valid .tar.gz package (or one with the given manifest text and files)."""
    members = {"mercato.toml": (manifest if manifest is not None
                                else manifest_text(name, version, kind=kind, platforms=platforms)).encode(),
               "bin/run": b"#!/bin/sh\necho hello\n", "README.md": f"# {name}\n".encode(), **(files or {})}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, data in members.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o755 if path.startswith("bin/") else 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def new_slug(prefix: str = "app") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Shop:
    """A developer with a publisher, a reviewer, and an admin, all signed in."""

    client: httpx.AsyncClient
    actors: Actors
    developer: Actor
    publisher: str
    reviewer: Actor
    admin: Actor

    @classmethod
    async def open(cls, client: httpx.AsyncClient, actors: Actors) -> Shop:
        developer = await actors.create()
        publisher = await actors.publisher(developer)
        developer = await actors.login(developer.email, developer.password, user_id=developer.id)
        return cls(client, actors, developer, publisher["slug"], await actors.create("reviewer"),
                   await actors.create("marketplace_admin"))

    async def listing(self, slug: str | None = None, **fields: Any) -> dict[str, Any]:
        body = {"publisher": self.publisher, "slug": slug or new_slug(), "name": "Test Listing", "kind": "app",
                "summary": "Does things.", **fields}
        response = await self.client.post(f"{V1}/listings", headers=self.developer.headers, json=body)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    async def upload(self, listing: str, version: str, *, data: bytes | None = None, kind: str = "app",
                     as_actor: Actor | None = None, sha256: str | None = None,
                     platforms: tuple[str, ...] = ("any",)) -> httpx.Response:
        content = data if data is not None else package_bytes(listing, version, kind=kind, platforms=platforms)
        form = {"sha256": sha256} if sha256 else None
        return await self.client.post(f"{V1}/listings/{listing}/versions", headers=(as_actor or self.developer).headers,
                                      files={"file": (f"{listing}-{version}.tar.gz", content, "application/gzip")},
                                      data=form)

    async def submit(self, listing: str, version: str, **body: Any) -> dict[str, Any]:
        response = await self.client.post(f"{V1}/listings/{listing}/versions/{version}/submit",
                                          headers=self.developer.headers, json=body or None)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def task_of(self, listing: str, version: str) -> dict[str, Any]:
        response = await self.client.get(f"{V1}/review/tasks", headers=self.reviewer.headers,
                                         params={"limit": 100})
        assert response.status_code == 200, response.text
        for task in response.json()["items"]:
            if task["listing"]["slug"] == listing and task["version"]["version"] == version:
                return task  # type: ignore[no-any-return]
        raise AssertionError(f"no review task for {listing} {version}")

    async def decide(self, listing: str, version: str, verb: str = "approve", **body: Any) -> dict[str, Any]:
        task = await self.task_of(listing, version)
        claimed = await self.client.post(f"{V1}/review/tasks/{task['id']}/claim", headers=self.reviewer.headers)
        assert claimed.status_code == 200, claimed.text
        response = await self.client.post(f"{V1}/review/tasks/{task['id']}/{verb}", headers=self.reviewer.headers,
                                          json=body or None)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def published(self, slug: str | None = None, version: str = "1.0.0", **fields: Any) -> dict[str, Any]:
        """A listing with one approved version, published."""
        listing = await self.listing(slug, **fields)
        uploaded = await self.upload(listing["slug"], version, kind=listing["kind"])
        assert uploaded.status_code == 201, uploaded.text
        await self.submit(listing["slug"], version)
        await self.decide(listing["slug"], version)
        response = await self.client.get(f"{V1}/listings/{listing['slug']}", headers=self.developer.headers)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]
