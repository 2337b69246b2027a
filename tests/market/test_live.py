"""End to end (O6): two stores served by uvicorn on loopback, each with its own runtime and
database. The source store publishes listings; the mirror adds it as a market source and
follows its sync feed over real HTTP."""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mercato.app.runtime import Runtime
from mercato.config import Settings
from mercato.market import sweep
from mercato.models import MarketSource
from tests.support.actors import Actor, Actors
from tests.support.backends import PG_URL, admin_url, pg_admin
from tests.support.live_server import serve
from tests.support.orders import Seller
from tests.sync.support import feed, published, settle

V1 = "/api/v1"
SOURCES = f"{V1}/admin/sources"
WAIT = 10.0


@contextlib.asynccontextmanager
async def another_database(template: str, directory: Path) -> AsyncIterator[str]:
    """A migrated database of the source store's own, made like the ``database_url`` fixture's."""
    if PG_URL:
        name = f"mercato_src_{uuid.uuid4().hex[:12]}"
        await pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        try:
            yield admin_url(name)
        finally:
            await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        directory.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - test set-up of a local folder
        shutil.copyfile(template, directory / "mercato.db")
        yield f"sqlite+aiosqlite:///{directory / 'mercato.db'}"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"bus_sweep_interval_seconds": 0.2})


async def mirror_sync(http: httpx.AsyncClient, admin: Actor, source_id: str) -> dict[str, Any]:
    response = await http.post(f"{SOURCES}/{source_id}/sync", headers=admin.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def mirrored(http: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    response = await http.get(f"{V1}/market/listings", params={"limit": 100})
    assert response.status_code == 200, response.text
    return {item["remote_id"]: item for item in response.json()["items"]}


async def stored_cursor(runtime: Runtime, source_id: str) -> str | None:
    async with runtime.db.read_session() as session:
        source = await session.get(MarketSource, uuid.UUID(source_id))
        assert source is not None
        return source.cursor


async def test_a_store_mirrors_another_store_through_its_sync_feed(
        runtime: Runtime, settings: Settings, database_template: str, tmp_path: Path) -> None:
    source_settings = settings.model_copy(update={
        "data_dir": tmp_path / "source", "outbound_allowed_hosts": [],
        "redis_namespace": f"mercato-test-{uuid.uuid4().hex[:8]}"})
    async with contextlib.AsyncExitStack() as stack:
        source_settings.database_url = await stack.enter_async_context(
            another_database(database_template, tmp_path / "source"))
        source_runtime = Runtime.from_settings(source_settings)
        stack.push_async_callback(source_runtime.close)
        source_server = contextlib.AsyncExitStack()  # stopped mid-test: the source goes away
        stack.push_async_callback(source_server.aclose)
        source_url = await source_server.enter_async_context(serve(source_runtime))
        source_http = await source_server.enter_async_context(httpx.AsyncClient(base_url=source_url, timeout=WAIT))
        mirror_url = await stack.enter_async_context(serve(runtime))
        mirror_http = await stack.enter_async_context(httpx.AsyncClient(base_url=mirror_url, timeout=WAIT))

        # the source store publishes two listings
        seller = await Seller.open(source_http, Actors(source_http, source_runtime), source_runtime)
        editor, lister = await published(seller, name="Editor Pro"), await published(seller, name="Lister")
        await settle(source_runtime)

        # the mirror's admin adds it; the first sync takes the snapshot
        admin = await Actors(mirror_http, runtime).create("marketplace_admin")
        response = await mirror_http.post(SOURCES, headers=admin.headers, json={"name": "Source", "url": source_url})
        assert response.status_code == 201, response.text
        source_id = response.json()["id"]
        [first] = await sweep.sync_due(runtime.db, runtime.settings)  # the sweep: a new source is due at once
        assert first.ok and first.upserted == 2, first
        copies = await mirrored(mirror_http)
        assert {copies[editor["id"]]["name"], copies[lister["id"]]["name"]} == {"Editor Pro", "Lister"}
        assert copies[editor["id"]]["source"] == {"id": source_id, "name": "Source", "url": source_url}
        assert copies[editor["id"]]["source_link"] == f"{source_url}/listings/{editor['slug']}"

        # an edit on the source arrives incrementally: only that listing, from the stored cursor
        before = await stored_cursor(runtime, source_id)
        assert before is not None
        patched = await source_http.patch(f"{V1}/listings/{editor['id']}", headers=seller.developer.headers,
                                          json={"name": "Editor Ultra"})
        assert patched.status_code == 200, patched.text
        await settle(source_runtime)
        delta = await feed(source_http, before)  # what the mirror is about to fetch
        assert [change["id"] for change in delta["changes"]] == [editor["id"]]
        edited = await mirror_sync(mirror_http, admin, source_id)
        assert (edited["upserted"], edited["removed"], edited["health"]) == (1, 0, "ok")
        assert await stored_cursor(runtime, source_id) not in (None, before)
        copies = await mirrored(mirror_http)
        assert copies[editor["id"]]["name"] == "Editor Ultra" and copies[lister["id"]]["name"] == "Lister"
        assert (await mirror_sync(mirror_http, admin, source_id))["upserted"] == 0  # nothing new

        # delisting on the source removes the mirror copy
        delisted = await source_http.post(f"{V1}/listings/{lister['id']}/delist", headers=seller.developer.headers)
        assert delisted.status_code == 200, delisted.text
        await settle(source_runtime)
        assert (await mirror_sync(mirror_http, admin, source_id))["removed"] == 1
        assert set(await mirrored(mirror_http)) == {editor["id"]}

        # the source goes away: failures count up, health turns failing, the copies stay
        await source_server.aclose()
        for attempt in (1, 2):
            down = await mirror_sync(mirror_http, admin, source_id)
            assert (down["health"], down["failure_count"]) == ("failing", attempt)
            assert down["last_error"]
        assert set(await mirrored(mirror_http)) == {editor["id"]}

        # deleting the source hides its listings
        deleted = await mirror_http.delete(f"{SOURCES}/{source_id}", headers=admin.headers)
        assert deleted.status_code == 204
        assert await mirrored(mirror_http) == {}
        assert (await mirror_http.get(f"{V1}/market/listings/{copies[editor['id']]['id']}")).status_code == 404
