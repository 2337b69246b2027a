"""API.md: list endpoints with filters accept ``total=true`` and then include ``total``."""

from __future__ import annotations

import uuid

import httpx

from tests.support.actors import Actor, Actors

V1 = "/api/v1"


async def test_total_counts_every_match_not_only_the_page(client: httpx.AsyncClient, actors: Actors,
                                                         super_admin: Actor) -> None:
    marker = uuid.uuid4().hex[:8]
    for n in range(3):
        await actors.create(email=f"total-{marker}-{n}@example.org")
    page = await client.get(f"{V1}/admin/users", params={"q": f"total-{marker}", "limit": 2, "total": "true"},
                            headers=super_admin.headers)
    assert page.status_code == 200
    body = page.json()
    assert (len(body["items"]), body["total"], body["next_cursor"] is not None) == (2, 3, True)
    without = await client.get(f"{V1}/admin/users", params={"q": f"total-{marker}"}, headers=super_admin.headers)
    assert without.json()["total"] is None


async def test_every_filtered_admin_list_accepts_total(client: httpx.AsyncClient, super_admin: Actor) -> None:
    for path, params in ((f"{V1}/admin/publisher-applications", {"status": "pending"}),
                         (f"{V1}/admin/audit", {"action": "user:create"}),
                         (f"{V1}/admin/events", {"type": "user.registered"}),
                         (f"{V1}/admin/dead-letters", {})):
        response = await client.get(path, params={**params, "total": "true", "limit": 1}, headers=super_admin.headers)
        assert response.status_code == 200, (path, response.text)
        body = response.json()
        assert isinstance(body["total"], int) and body["total"] >= len(body["items"]), path
    events = await client.get(f"{V1}/admin/events", params={"type": "user.registered", "total": "true"},
                              headers=super_admin.headers)
    assert events.json()["total"] >= 1  # the super admin's own registration
