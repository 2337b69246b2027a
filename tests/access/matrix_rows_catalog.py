"""Matrix rows (A2/A3/A6) of the catalog, versions and review queue routes.

Listings belong to the developer's publisher ``mine`` and go through the real flow
(upload, submit, claim, approve) made by the developer and a reviewer of the world's
store, so each principal's request meets a resource in the state the row names.
"""

from __future__ import annotations

import uuid
from typing import Any

from tests.access.matrix import (
    ADMIN,
    ADMINS,
    ANON,
    DEV,
    OTHER_DEV,
    REVIEWER,
    SUPER,
    USER,
    V1,
    Row,
    World,
    dynamic,
    everyone,
    only,
    slug,
    static,
)
from tests.catalog.support import package_bytes

REVIEWERS = (REVIEWER, *ADMINS)
# Listing routes of ``mine``: a member (own) or an admin (any) may; others are refused.
OWNERS = (DEV, *ADMINS)


def _expect(status: int, allowed: tuple[str, ...], **others: int) -> dict[str, int]:
    return {**only(*allowed, status=status), **others}


async def _check(response: Any, status: int) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def a_listing(world: World, *, price: int = 0) -> dict[str, Any]:
    dev = world.who[DEV]
    return await _check(await world.client.post(f"{V1}/listings", headers=dev.headers, json={
        "publisher": world.mine, "slug": slug(), "name": "Matrix Listing", "kind": "app",
        "offers": [{"delivery": "digital", "price": {"amount": price, "currency": "USD"}}]}), 201)


async def upload(world: World, listing: str, version: str) -> None:
    await _check(await world.client.post(f"{V1}/listings/{listing}/versions", headers=world.who[DEV].headers,
                                         files={"file": ("p.tar.gz", package_bytes(listing, version))}), 201)


async def submitted_task(world: World, listing: str, version: str) -> str:
    await upload(world, listing, version)
    await _check(await world.client.post(f"{V1}/listings/{listing}/versions/{version}/submit",
                                         headers=world.who[DEV].headers), 200)
    queue = await _check(await world.client.get(f"{V1}/review/tasks", headers=world.super_admin.headers,
                                                params={"limit": 100}), 200)
    return next(t["id"] for t in queue["items"]
                if t["listing"]["slug"] == listing and t["version"]["version"] == version)


async def decide(world: World, task: str, verb: str, body: dict[str, Any] | None = None,
                 by: str = SUPER) -> None:
    headers = world.who[by].headers
    await _check(await world.client.post(f"{V1}/review/tasks/{task}/claim", headers=headers), 200)
    await _check(await world.client.post(f"{V1}/review/tasks/{task}/{verb}", headers=headers, json=body), 200)


async def published(world: World, *, price: int = 0) -> dict[str, Any]:
    listing = await a_listing(world, price=price)
    await decide(world, await submitted_task(world, listing["slug"], "1.0.0"), "approve")
    return listing


def version_name() -> str:
    return f"1.{uuid.uuid4().int % 10_000}.0"


async def fresh_category(world: World) -> str:
    name = slug()
    await _check(await world.client.post(f"{V1}/admin/categories", headers=world.super_admin.headers,
                                         json={"slug": name, "name": "Matrix Category"}), 201)
    return name


async def delisted(world: World) -> dict[str, Any]:
    listing = await published(world)
    await _check(await world.client.post(f"{V1}/listings/{listing['slug']}/delist",
                                         headers=world.who[DEV].headers), 200)
    return listing


async def suspended(world: World) -> dict[str, Any]:
    listing = await published(world)
    await _check(await world.client.post(f"{V1}/admin/listings/{listing['id']}/suspend",
                                         headers=world.super_admin.headers, json={"reason": "Matrix"}), 200)
    return listing


async def claimed_by(world: World, who: str) -> str:
    """A task claimed by ``who`` when they may claim; else a pending one."""
    listing = await a_listing(world)
    task = await submitted_task(world, listing["slug"], "1.0.0")
    if who in REVIEWERS:
        await _check(await world.client.post(f"{V1}/review/tasks/{task}/claim", headers=world.who[who].headers), 200)
    return task


async def appealed(world: World) -> str:
    listing = await a_listing(world)
    task = await submitted_task(world, listing["slug"], "1.0.0")
    await decide(world, task, "reject", {"reason": "Matrix rejection"})
    await _check(await world.client.post(f"{V1}/listings/{listing['slug']}/versions/1.0.0/appeal",
                                         headers=world.who[DEV].headers, json={"reason": "Please look again"}), 200)
    return task


async def rejected_version(world: World) -> str:
    listing = await a_listing(world)
    await decide(world, await submitted_task(world, listing["slug"], "1.0.0"), "reject", {"reason": "Matrix"})
    return f"{V1}/listings/{listing['slug']}/versions/1.0.0/appeal"


LISTING = f"{V1}/listings/{{listing_id}}"
VERSION = f"{LISTING}/versions/{{version}}"
TASK = f"{V1}/review/tasks/{{task_id}}"
CREATE_BODY = {"slug": "", "name": "Matrix Made", "kind": "app"}

MATRIX_ROWS: list[Row] = [
    # categories
    Row("list categories", "GET", f"{V1}/categories", everyone(200), static(f"{V1}/categories")),
    Row("create a category", "POST", f"{V1}/admin/categories", only(*ADMINS, status=201), dynamic(lambda w, who: {
        "url": f"{V1}/admin/categories", "json": {"slug": slug(), "name": "New Category"}})),
    Row("edit a category", "PATCH", f"{V1}/admin/categories/{{slug}}", only(*ADMINS, status=200),
        dynamic(lambda w, who: _category_request(w, {"name": "Renamed"}))),
    Row("delete a category", "DELETE", f"{V1}/admin/categories/{{slug}}", only(*ADMINS, status=204),
        dynamic(lambda w, who: _category_request(w, None))),
    # browsing
    Row("search listings", "GET", f"{V1}/listings", everyone(200), static(f"{V1}/listings", params={"q": "matrix"})),
    Row("batch listings", "POST", f"{V1}/listings/batch", everyone(200),
        static(f"{V1}/listings/batch", json={"ids": [str(uuid.uuid4())]})),
    Row("read a published listing", "GET", LISTING, everyone(200),
        dynamic(lambda w, who: _url(published(w), "{slug}"))),
    Row("read a draft (A3: only its publisher and staff)", "GET", LISTING,
        {**everyone(404), DEV: 200, REVIEWER: 200, ADMIN: 200, SUPER: 200},
        dynamic(lambda w, who: _url(a_listing(w), "{id}"))),
    Row("read an unknown listing", "GET", LISTING, everyone(404), static(f"{V1}/listings/{uuid.uuid4()}")),
    Row("a publisher's listings", "GET", f"{V1}/publishers/{{slug}}/listings", everyone(200),
        dynamic(lambda w, who: {"url": f"{V1}/publishers/{w.mine}/listings"})),
    # listing changes
    Row("create a listing for mine", "POST", f"{V1}/listings", _expect(201, (DEV, *ADMINS)),
        dynamic(lambda w, who: {"url": f"{V1}/listings", "json": {**CREATE_BODY, "slug": slug(),
                                                                  "publisher": w.mine}})),
    Row("edit a published listing", "PATCH", LISTING, _expect(200, OWNERS),
        dynamic(lambda w, who: _url(published(w), "{id}", json={"summary": "Edited"}))),
    Row("edit a draft of another publisher (A3)", "PATCH", LISTING,
        {**_expect(200, OWNERS), OTHER_DEV: 404},
        dynamic(lambda w, who: _url(a_listing(w), "{id}", json={"summary": "Edited"}))),
    Row("submit a listing", "POST", f"{LISTING}/submit", {**_expect(200, OWNERS), OTHER_DEV: 404},
        dynamic(lambda w, who: _uploaded_listing(w))),
    Row("delist", "POST", f"{LISTING}/delist", _expect(200, OWNERS),
        dynamic(lambda w, who: _url(published(w), "{id}", suffix="/delist"))),
    Row("delist a draft (A6)", "POST", f"{LISTING}/delist", {**_expect(409, OWNERS), OTHER_DEV: 404},
        dynamic(lambda w, who: _url(a_listing(w), "{id}", suffix="/delist"))),
    Row("relist", "POST", f"{LISTING}/relist", {**_expect(200, OWNERS), OTHER_DEV: 404},
        dynamic(lambda w, who: _url(delisted(w), "{id}", suffix="/relist"))),
    Row("suspend", "POST", f"{V1}/admin/listings/{{listing_id}}/suspend", only(*ADMINS, status=200),
        dynamic(lambda w, who: _url(published(w), "{id}", prefix=f"{V1}/admin/listings/", suffix="/suspend",
                                    json={"reason": "Matrix"}))),
    Row("unsuspend", "POST", f"{V1}/admin/listings/{{listing_id}}/unsuspend", only(*ADMINS, status=200),
        dynamic(lambda w, who: _url(suspended(w), "{id}", prefix=f"{V1}/admin/listings/", suffix="/unsuspend"))),
    # versions
    Row("list versions", "GET", f"{LISTING}/versions", everyone(200),
        dynamic(lambda w, who: _url(published(w), "{slug}", suffix="/versions"))),
    Row("read a version", "GET", VERSION, everyone(200),
        dynamic(lambda w, who: _url(published(w), "{slug}", suffix="/versions/1.0.0"))),
    Row("upload a version", "POST", f"{LISTING}/versions", _expect(201, OWNERS),
        dynamic(lambda w, who: _upload_request(w))),
    Row("submit a version", "POST", f"{VERSION}/submit", _expect(200, OWNERS),
        dynamic(lambda w, who: _uploaded_version(w))),
    Row("yank a version", "POST", f"{VERSION}/yank", _expect(200, OWNERS),
        dynamic(lambda w, who: _url(published(w), "{slug}", suffix="/versions/1.0.0/yank",
                                    json={"reason": "Broken"}))),
    Row("yank an uploaded version (A6)", "POST", f"{VERSION}/yank", _expect(409, OWNERS),
        dynamic(lambda w, who: _uploaded_version(w, verb="yank", json={"reason": "Broken"}))),
    Row("appeal a rejection", "POST", f"{VERSION}/appeal", {**_expect(200, OWNERS), OTHER_DEV: 404},
        dynamic(lambda w, who: _appeal_request(w))),
    Row("download a free version", "GET", f"{VERSION}/download", {**everyone(200), ANON: 401},
        dynamic(lambda w, who: _url(published(w), "{slug}", suffix="/versions/1.0.0/download"))),
    Row("download a paid version (A6: owners only)", "GET", f"{VERSION}/download",
        {**everyone(403), ANON: 401, DEV: 200, REVIEWER: 200, ADMIN: 200, SUPER: 200},
        dynamic(lambda w, who: _url(published(w, price=500), "{slug}", suffix="/versions/1.0.0/download"))),
    Row("public keys", "GET", f"{V1}/keys", everyone(200), static(f"{V1}/keys")),
    # review queue
    Row("the review queue", "GET", f"{V1}/review/tasks", only(*REVIEWERS, status=200), static(f"{V1}/review/tasks")),
    Row("a review task", "GET", TASK, only(*REVIEWERS, status=200),
        dynamic(lambda w, who: _task_url(claimed_by(w, USER), ""))),
    Row("an unknown review task (A3)", "GET", TASK, only(*REVIEWERS, status=404),
        static(f"{V1}/review/tasks/{uuid.uuid4()}")),
    Row("claim", "POST", f"{TASK}/claim", only(*REVIEWERS, status=200),
        dynamic(lambda w, who: _task_url(claimed_by(w, USER), "/claim"))),
    Row("release", "POST", f"{TASK}/release", only(*REVIEWERS, status=200),
        dynamic(lambda w, who: _task_url(claimed_by(w, who), "/release"))),
    Row("approve", "POST", f"{TASK}/approve", only(*REVIEWERS, status=200),
        dynamic(lambda w, who: _task_url(claimed_by(w, who), "/approve"))),
    Row("approve unclaimed (A6)", "POST", f"{TASK}/approve", only(*REVIEWERS, status=409),
        dynamic(lambda w, who: _task_url(claimed_by(w, USER), "/approve"))),
    Row("reject", "POST", f"{TASK}/reject", only(*REVIEWERS, status=200),
        dynamic(lambda w, who: _task_url(claimed_by(w, who), "/reject", json={"reason": "Not good"}))),
    Row("request changes", "POST", f"{TASK}/request-changes", only(*REVIEWERS, status=200),
        dynamic(lambda w, who: _task_url(claimed_by(w, who), "/request-changes", json={"reason": "Fix it"}))),
    Row("uphold an appeal", "POST", f"{TASK}/appeal/uphold", only(*ADMINS, status=200),
        dynamic(lambda w, who: _task_url(appealed(w), "/appeal/uphold"))),
    Row("deny an appeal", "POST", f"{TASK}/appeal/deny", only(*ADMINS, status=200),
        dynamic(lambda w, who: _task_url(appealed(w), "/appeal/deny", json={"reason": "Stands"}))),
]


async def _url(listing_coro: Any, key: str, *, prefix: str = f"{V1}/listings/", suffix: str = "",
               **kwargs: Any) -> dict[str, Any]:
    listing = await listing_coro
    return {"url": prefix + key.format(**listing) + suffix, **kwargs}


async def _category_request(world: World, body: dict[str, Any] | None) -> dict[str, Any]:
    request: dict[str, Any] = {"url": f"{V1}/admin/categories/{await fresh_category(world)}"}
    if body is not None:
        request["json"] = body
    return request


async def _uploaded_listing(world: World) -> dict[str, Any]:
    listing = await a_listing(world)
    await upload(world, listing["slug"], "1.0.0")
    return {"url": f"{V1}/listings/{listing['slug']}/submit"}


async def _upload_request(world: World) -> dict[str, Any]:
    listing = await published(world)
    version = version_name()
    return {"url": f"{V1}/listings/{listing['slug']}/versions",
            "files": {"file": ("p.tar.gz", package_bytes(listing["slug"], version))}}


async def _uploaded_version(world: World, verb: str = "submit", **kwargs: Any) -> dict[str, Any]:
    listing = await published(world)
    version = version_name()
    await upload(world, listing["slug"], version)
    return {"url": f"{V1}/listings/{listing['slug']}/versions/{version}/{verb}", **kwargs}


async def _appeal_request(world: World) -> dict[str, Any]:
    return {"url": await rejected_version(world), "json": {"reason": "Please look again"}}


async def _task_url(task_coro: Any, suffix: str, **kwargs: Any) -> dict[str, Any]:
    return {"url": f"{V1}/review/tasks/{await task_coro}{suffix}", **kwargs}
