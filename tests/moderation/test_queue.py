"""The review queue (P3): order, claims, decisions, appeals, own-publisher exclusion,
stale claims, concurrency, events and audit."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from mercato.app.runtime import Runtime
from mercato.moderation import service as review
from tests.catalog.support import V1, Shop
from tests.support.actors import Actors


@pytest.fixture
async def shop(client: httpx.AsyncClient, actors: Actors) -> Shop:
    return await Shop.open(client, actors)


async def submitted(shop: Shop, version: str = "1.0.0", **submit: object) -> tuple[str, dict]:  # type: ignore[type-arg]
    listing = await shop.listing()
    assert (await shop.upload(listing["slug"], version)).status_code == 201
    await shop.submit(listing["slug"], version, **submit)
    return listing["slug"], await shop.task_of(listing["slug"], version)


async def test_queue_puts_high_priority_first_then_oldest(shop: Shop, client: httpx.AsyncClient) -> None:
    first, _ = await submitted(shop)
    second, _ = await submitted(shop)
    urgent, task = await submitted(shop, security_update=True)
    assert task["priority"] == "high"
    queue = await client.get(f"{V1}/review/tasks", headers=shop.reviewer.headers, params={"total": "true"})
    slugs = [t["listing"]["slug"] for t in queue.json()["items"]]
    assert slugs == [urgent, first, second] and queue.json()["total"] == 3
    page = await client.get(f"{V1}/review/tasks", headers=shop.reviewer.headers, params={"limit": 2})
    rest = await client.get(f"{V1}/review/tasks", headers=shop.reviewer.headers,
                            params={"limit": 2, "cursor": page.json()["next_cursor"]})
    assert [t["listing"]["slug"] for t in page.json()["items"] + rest.json()["items"]] == slugs
    assert all(t["age_seconds"] >= 0 for t in queue.json()["items"])


async def test_claim_then_approve_publishes_and_signs(shop: Shop, client: httpx.AsyncClient,
                                                      actors: Actors) -> None:
    slug, task = await submitted(shop)
    unclaimed = await client.post(f"{V1}/review/tasks/{task['id']}/approve", headers=shop.reviewer.headers)
    assert unclaimed.status_code == 409
    claimed = await client.post(f"{V1}/review/tasks/{task['id']}/claim", headers=shop.reviewer.headers)
    assert claimed.status_code == 200 and claimed.json()["status"] == "claimed"
    assert claimed.json()["manifest"]["package"]["name"] == slug
    assert any(f["path"] == "bin/run" for f in claimed.json()["checks"]["files"])
    other = await actors.create("reviewer")
    stolen = await client.post(f"{V1}/review/tasks/{task['id']}/approve", headers=other.headers)
    assert stolen.status_code == 409 and stolen.json()["code"] == "claimed_by_other"
    approved = await client.post(f"{V1}/review/tasks/{task['id']}/approve", headers=shop.reviewer.headers)
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    version = (await client.get(f"{V1}/listings/{slug}/versions/1.0.0")).json()
    assert version["status"] == "approved" and version["signature"]
    listing = (await client.get(f"{V1}/listings/{slug}")).json()
    assert listing["status"] == "published" and listing["published_at"]
    again = await client.post(f"{V1}/review/tasks/{task['id']}/reject", headers=shop.reviewer.headers,
                              json={"reason": "Changed my mind"})
    assert again.status_code == 409


async def test_rejection_appeal_once_and_uphold(shop: Shop, client: httpx.AsyncClient) -> None:
    slug, task = await submitted(shop)
    await shop.decide(slug, "1.0.0", "reject", reason="Asks for too many permissions")
    listing = (await client.get(f"{V1}/listings/{slug}", headers=shop.developer.headers)).json()
    assert listing["status"] == "rejected"
    appeal = await client.post(f"{V1}/listings/{slug}/versions/1.0.0/appeal", headers=shop.developer.headers,
                               json={"reason": "The network permission is needed for sync"})
    assert appeal.status_code == 200
    twice = await client.post(f"{V1}/listings/{slug}/versions/1.0.0/appeal", headers=shop.developer.headers,
                              json={"reason": "Please"})
    assert twice.status_code == 409
    by_reviewer = await client.post(f"{V1}/review/tasks/{task['id']}/appeal/uphold", headers=shop.reviewer.headers)
    assert by_reviewer.status_code == 403
    pending = await client.get(f"{V1}/review/tasks", headers=shop.admin.headers, params={"appeal": "pending"})
    assert [t["id"] for t in pending.json()["items"]] == [task["id"]]
    upheld = await client.post(f"{V1}/review/tasks/{task['id']}/appeal/uphold", headers=shop.admin.headers)
    assert upheld.status_code == 200 and upheld.json()["appeal_status"] == "upheld"
    reopened = await shop.task_of(slug, "1.0.0")
    assert reopened["id"] != task["id"] and reopened["priority"] == "high" and reopened["status"] == "pending"
    listing = (await client.get(f"{V1}/listings/{slug}", headers=shop.developer.headers)).json()
    assert listing["status"] == "in_review"
    await shop.decide(slug, "1.0.0")
    assert (await client.get(f"{V1}/listings/{slug}")).json()["status"] == "published"


async def test_requested_changes_then_a_new_upload_goes_back_to_review(shop: Shop, client: httpx.AsyncClient) -> None:
    slug, _ = await submitted(shop)
    await shop.decide(slug, "1.0.0", "request-changes", reason="Add a changelog")
    listing = (await client.get(f"{V1}/listings/{slug}", headers=shop.developer.headers)).json()
    assert listing["status"] == "changes_requested"
    assert (await shop.upload(slug, "1.0.1")).status_code == 201
    await shop.submit(slug, "1.0.1")
    assert (await client.get(f"{V1}/listings/{slug}", headers=shop.developer.headers)).json()["status"] == "in_review"


async def test_reviewers_never_review_their_own_publisher(shop: Shop, client: httpx.AsyncClient,
                                                          actors: Actors) -> None:
    slug, task = await submitted(shop)
    add = await client.post(f"{V1}/publishers/{shop.publisher}/members", headers=shop.admin.headers,
                            json={"email": shop.reviewer.email})
    assert add.status_code == 200
    queue = await client.get(f"{V1}/review/tasks", headers=shop.reviewer.headers)
    assert queue.json()["items"] == []
    claim = await client.post(f"{V1}/review/tasks/{task['id']}/claim", headers=shop.reviewer.headers)
    assert claim.status_code == 403 and claim.json()["code"] == "own_publisher"
    assert (await client.get(f"{V1}/review/tasks/{task['id']}", headers=shop.reviewer.headers)).status_code == 404
    developer_claim = await client.post(f"{V1}/review/tasks/{task['id']}/claim", headers=shop.developer.headers)
    assert developer_claim.status_code == 403


async def test_concurrent_claims_give_the_task_to_one_reviewer(shop: Shop, client: httpx.AsyncClient,
                                                               actors: Actors) -> None:
    _, task = await submitted(shop)
    reviewers = [await actors.create("reviewer") for _ in range(5)]
    answers = await asyncio.gather(*(client.post(f"{V1}/review/tasks/{task['id']}/claim", headers=r.headers)
                                     for r in reviewers))
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409, 409]


async def test_release_and_stale_claims_return_to_the_queue(shop: Shop, client: httpx.AsyncClient,
                                                            runtime: Runtime) -> None:
    _, task = await submitted(shop)
    url = f"{V1}/review/tasks/{task['id']}"
    await client.post(f"{url}/claim", headers=shop.reviewer.headers)
    released = await client.post(f"{url}/release", headers=shop.reviewer.headers)
    assert released.status_code == 200 and released.json()["status"] == "pending"
    await client.post(f"{url}/claim", headers=shop.reviewer.headers)
    async with runtime.db.transaction() as session:
        assert await review.release_stale(session, timeout_seconds=3600) == 0
    await asyncio.sleep(0.01)
    async with runtime.db.transaction() as session:
        assert await review.release_stale(session, timeout_seconds=0) == 1
    async with runtime.db.transaction() as session:  # idempotent
        assert await review.release_stale(session, timeout_seconds=0) == 0
    assert (await client.get(url, headers=shop.reviewer.headers)).json()["status"] == "pending"


async def test_decisions_are_events_and_audit_rows(shop: Shop, client: httpx.AsyncClient, super_admin) -> None:  # type: ignore[no-untyped-def]
    slug, task = await submitted(shop)
    await shop.decide(slug, "1.0.0")
    events = await client.get(f"{V1}/admin/events", headers=super_admin.headers, params={"limit": 100})
    types = [e["type"] for e in events.json()["items"]]
    for expected in ("listing.created", "version.uploaded", "version.submitted", "listing.submitted",
                     "review.created", "review.claimed", "review.approved", "version.approved", "listing.published"):
        assert expected in types, expected
    audit = await client.get(f"{V1}/admin/audit", headers=super_admin.headers,
                             params={"resource": f"review_task:{task['id']}"})
    assert [row["action"] for row in audit.json()["items"]][:2] in (["review:approve", "review:claim"],
                                                                    ["review:claim", "review:approve"])
