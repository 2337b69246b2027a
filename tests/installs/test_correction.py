"""I5: status correction (inventory against records, deadlines) and the runtime snapshot."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from mercato.app.runtime import Runtime
from mercato.installs.handlers import correct_status
from mercato.kit.clock import utcnow
from mercato.models import InstallTask, SweepLease
from tests.catalog.support import Shop
from tests.installs.support import (
    V1,
    install,
    installation,
    installed,
    published,
    register,
)
from tests.library.support import events
from tests.support.actors import Actor, Actors


@pytest.fixture
async def shop(client: httpx.AsyncClient, actors: Actors) -> Shop:
    return await Shop.open(client, actors)


def item(copy: dict, state: str = "installed", version: str | None = None) -> dict:  # type: ignore[type-arg]
    return {"installation_id": copy["id"], "listing_id": copy["listing_id"],
            "version": version or copy["version"], "state": state}


async def test_a_deleted_install_directory_is_noticed(client: httpx.AsyncClient, shop: Shop, user: Actor,
                                                      runtime: Runtime) -> None:
    listing = await published(shop)
    agent = await register(client, user)
    kept = await installed(client, user, agent, listing["id"], name="kept")
    lost = await installed(client, user, agent, listing["id"], name="lost")
    assert (await agent.heartbeat([item(kept)])).status_code == 200  # "lost" is no longer on disk
    done = await correct_status(runtime.db, settings=runtime.settings)
    assert done.installations_fixed == 1
    assert (await installation(client, user, lost["id"]))["state"] == "uninstalled"
    assert (await installation(client, user, kept["id"]))["state"] == "installed"
    [corrected] = await events(runtime, "status.corrected")
    assert corrected.data["id"] == lost["id"] and corrected.data["reason"] == "not_in_inventory"
    assert corrected.data["old"] == {"state": "installed", "version": "1.0.0"}
    assert corrected.data["new"] == {"state": "uninstalled", "version": None}
    again = await correct_status(runtime.db, settings=runtime.settings)  # the same report is compared once
    assert again.installations_fixed == 0 and again.instances_compared == 0


async def test_the_reported_state_and_version_win(client: httpx.AsyncClient, shop: Shop, user: Actor,
                                                  runtime: Runtime) -> None:
    listing = await published(shop)
    agent = await register(client, user)
    copy = await installed(client, user, agent, listing["id"])
    await agent.heartbeat([item(copy, state="stopped", version="0.9.0")])
    await correct_status(runtime.db, settings=runtime.settings)
    fixed = await installation(client, user, copy["id"])
    assert (fixed["state"], fixed["version"]) == ("stopped", "0.9.0")


async def test_an_installation_with_an_open_task_is_left_alone(client: httpx.AsyncClient, shop: Shop, user: Actor,
                                                               runtime: Runtime) -> None:
    listing = await published(shop)
    agent = await register(client, user)
    created = await install(client, user, agent, listing["id"])
    await agent.heartbeat([])  # not on disk yet: it is being installed
    done = await correct_status(runtime.db, settings=runtime.settings)
    assert done.installations_fixed == 0
    assert (await installation(client, user, created.json()["installation_id"]))["state"] == "installing"


async def test_a_task_past_its_deadline_fails(client: httpx.AsyncClient, shop: Shop, user: Actor,
                                              runtime: Runtime) -> None:
    listing = await published(shop)
    agent = await register(client, user)
    created = await install(client, user, agent, listing["id"])
    [handed] = await agent.fetch()
    await agent.progress(handed["id"], 30)
    async with runtime.db.transaction() as session:  # the agent went quiet long ago
        await session.execute(update(InstallTask).where(InstallTask.id == uuid.UUID(handed["id"]))
                              .values(deadline_at=utcnow() - timedelta(seconds=1)))
    done = await correct_status(runtime.db, settings=runtime.settings)
    assert done.tasks_failed == 1
    failed = (await client.get(f"{V1}/tasks/{handed['id']}", headers=user.headers)).json()
    assert failed["state"] == "failed" and "deadline" in failed["message"]
    copy = await installation(client, user, created.json()["installation_id"])
    assert (copy["state"], copy["active_task_id"]) == ("failed", None)
    [corrected] = await events(runtime, "status.corrected")
    assert (corrected.data["resource"], corrected.data["old"], corrected.data["new"]) == ("task", "running", "failed")
    late = await agent.result(handed["id"])
    assert late.status_code == 409  # exactly once: the late result does not count


async def test_the_runtime_snapshot_counts_by_state(client: httpx.AsyncClient, shop: Shop, user: Actor,
                                                    admin: Actor, runtime: Runtime) -> None:
    listing = await published(shop)
    agent = await register(client, user)
    await installed(client, user, agent, listing["id"])
    await install(client, user, agent, listing["id"], name="pending")
    await correct_status(runtime.db, settings=runtime.settings)
    refused = await client.get(f"{V1}/admin/runtime", headers=user.headers)
    assert refused.status_code == 403
    snapshot = (await client.get(f"{V1}/admin/runtime", headers=admin.headers)).json()
    assert snapshot["installations"] == {"installed": 1, "installing": 1}
    assert snapshot["tasks"] == {"succeeded": 1, "queued": 1}
    assert snapshot["instances"] == {"registered": 1, "reporting": 1}
    assert snapshot["overdue_tasks"] == 0
    assert isinstance(snapshot["sweeps"], list)


async def test_the_sweep_corrects_once_per_interval_and_reports_its_health(
        client: httpx.AsyncClient, shop: Shop, user: Actor, admin: Actor, runtime: Runtime) -> None:
    from types import SimpleNamespace

    from mercato.installs.handlers import CORRECTION, correct_status_when_due

    listing = await published(shop)
    agent = await register(client, user)
    lost = await installed(client, user, agent, listing["id"])
    await agent.heartbeat([])
    bus = SimpleNamespace(db=runtime.db, settings=runtime.settings)
    async with runtime.db.transaction() as session:  # the interval since the store's own run has passed
        await session.execute(update(SweepLease).where(SweepLease.name == CORRECTION)
                              .values(expires_at=utcnow() - timedelta(seconds=1)))
    await correct_status_when_due(bus)
    assert (await installation(client, user, lost["id"]))["state"] == "uninstalled"
    snapshot = (await client.get(f"{V1}/admin/runtime", headers=admin.headers)).json()
    [lease] = [sweep for sweep in snapshot["sweeps"] if sweep["name"] == CORRECTION]
    assert lease["ok"] is True and lease["last_run_at"] is not None
    await correct_status_when_due(bus)  # within the interval (120 s by default): not run again
    snapshot = (await client.get(f"{V1}/admin/runtime", headers=admin.headers)).json()
    assert [s["last_run_at"] for s in snapshot["sweeps"] if s["name"] == CORRECTION] == [lease["last_run_at"]]
