"""I2–I4: installing through tasks, driven by the agent with its instance token."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import httpx
import pytest

from mercato.app.runtime import Runtime
from mercato.models import InstallTask
from tests.catalog.support import Shop, package_bytes
from tests.installs.support import (
    CONFIGURED,
    V1,
    install,
    installation,
    installed,
    published,
    register,
    release,
    task,
    unknown,
)
from tests.library.support import events
from tests.support.actors import Actor, Actors


@pytest.fixture
async def shop(client: httpx.AsyncClient, actors: Actors) -> Shop:
    return await Shop.open(client, actors)


async def test_the_agent_installs_and_the_records_follow(client: httpx.AsyncClient, shop: Shop, user: Actor,
                                                        runtime: Runtime) -> None:
    listing = await published(shop)
    agent = await register(client, user)
    created = await install(client, user, agent, listing["id"])
    assert created.status_code == 202 and created.json()["state"] == "queued", created.text
    task_id = created.json()["id"]
    copy = await installation(client, user, created.json()["installation_id"])
    assert (copy["state"], copy["version"], copy["name"]) == ("installing", None, listing["slug"])

    [handed] = await agent.fetch()
    assert handed["id"] == task_id and handed["kind"] == "install" and handed["state"] == "dispatched"
    assert handed["installation"]["listing_slug"] == listing["slug"] and handed["version"] == "1.0.0"
    licence = handed["licence"]
    assert licence["licence"]["listing_id"] == listing["id"] and licence["licence"]["user_id"] == user.id
    assert licence["signature"] and licence["algorithm"]
    archive = await client.get(handed["artifact"]["url"], headers=agent.headers)
    assert archive.status_code == 200 and hashlib.sha256(archive.content).hexdigest() == handed["artifact"]["sha256"]
    assert await agent.fetch() == []  # handed out once

    running = await agent.progress(task_id, 40, "unpacking")
    assert running.status_code == 200 and (running.json()["state"], running.json()["progress"]) == ("running", 40)
    done = await agent.result(task_id)
    assert done.status_code == 200 and done.json()["state"] == "succeeded"
    copy = await installation(client, user, created.json()["installation_id"])
    assert (copy["state"], copy["version"]) == ("installed", "1.0.0")
    kinds = [e.data["state"] for e in await events(runtime, "task.progress")]
    assert kinds == ["running"]
    assert [e.data["user_id"] for e in await events(runtime, "task.succeeded")] == [user.id]


async def test_the_artifact_resumes_with_a_range(client: httpx.AsyncClient, shop: Shop, user: Actor) -> None:
    listing = await published(shop)
    agent = await register(client, user)
    await install(client, user, agent, listing["id"])
    [handed] = await agent.fetch()
    whole = await client.get(handed["artifact"]["url"], headers=agent.headers)
    part = await client.get(handed["artifact"]["url"], headers={**agent.headers, "Range": "bytes=10-"})
    assert part.status_code == 206 and part.content == whole.content[10:]
    assert whole.headers["x-signature-ed25519"] == handed["artifact"]["signature"]
    changed = await client.get(handed["artifact"]["url"], headers={**agent.headers, "Range": "bytes=10-",
                                                                   "If-Range": '"another"'})
    assert changed.status_code == 200 and changed.content == whole.content


async def test_an_install_counts_as_a_download_and_stops_once_the_entitlement_is_revoked(
        client: httpx.AsyncClient, shop: Shop, user: Actor, admin: Actor) -> None:
    """Issue 11 item 3: installs never counted, and a task queued before a refund still got the archive."""
    listing = await published(shop, offers=[{"delivery": "digital", "price": {"amount": 499, "currency": "USD"}}])
    granted = await client.post(f"{V1}/admin/entitlements", headers=admin.headers,
                                json={"user_id": user.id, "listing_id": listing["id"], "reason": "Press copy"})
    assert granted.status_code == 201, granted.text
    agent = await register(client, user)
    assert (await install(client, user, agent, listing["id"])).status_code == 202
    [handed] = await agent.fetch()
    assert (await client.get(handed["artifact"]["url"], headers=agent.headers)).status_code == 200
    library = (await client.get(f"{V1}/library", headers=user.headers)).json()["items"]
    assert [item["download_count"] for item in library] == [1]

    revoked = await client.delete(f"{V1}/admin/entitlements/{granted.json()['id']}", headers=admin.headers,
                                  params={"reason": "Refunded"})
    assert revoked.status_code == 200, revoked.text
    refused = await client.get(handed["artifact"]["url"], headers=agent.headers)
    assert refused.status_code == 403 and refused.json()["code"] == "not_entitled"
    resumed = await client.get(handed["artifact"]["url"], headers={**agent.headers, "Range": "bytes=10-"})
    assert resumed.status_code == 403


async def test_requirements_the_instance_does_not_meet_are_named(client: httpx.AsyncClient, shop: Shop,
                                                                 user: Actor) -> None:
    listing = await published(shop, extra=CONFIGURED, platforms=("linux-arm64",))
    agent = await register(client, user)
    await agent.heartbeat(platform="linux-x64", resources={"memory_mb": 100})
    refused = await install(client, user, agent, listing["id"], config={"workspace": "w"})
    assert refused.status_code == 422 and refused.json()["code"] == "requirements_not_met"
    named = {tuple(e["loc"]): e["type"] for e in refused.json()["errors"]}
    assert named == {("instance", "platform"): "requirement_unsupported",
                     ("instance", "memory_mb"): "requirement_insufficient",
                     ("instance", "disk_mb"): "requirement_missing"}
    assert (await client.get(f"{V1}/tasks", headers=user.headers)).json()["items"] == []


async def test_settings_are_checked_against_the_schema_and_defaults_filled(client: httpx.AsyncClient, shop: Shop,
                                                                          user: Actor) -> None:
    listing = await published(shop, extra=CONFIGURED)
    agent = await register(client, user)
    missing = await install(client, user, agent, listing["id"], config={"theme": "neon"})
    assert missing.status_code == 422 and missing.json()["code"] == "invalid_config"
    assert {tuple(e["loc"]) for e in missing.json()["errors"]} == {("body", "config", "workspace"),
                                                                   ("body", "config", "theme")}
    created = await install(client, user, agent, listing["id"], config={"workspace": "notes"})
    assert created.status_code == 202, created.text
    [handed] = await agent.fetch()
    assert handed["installation"]["config"] == {"workspace": "notes", "theme": "light"}


async def test_a_paid_listing_needs_an_entitlement(client: httpx.AsyncClient, shop: Shop, user: Actor) -> None:
    listing = await published(shop, offers=[{"delivery": "digital", "price": {"amount": 500, "currency": "USD"}}])
    agent = await register(client, user)
    refused = await install(client, user, agent, listing["id"])
    assert refused.status_code == 403 and refused.json()["code"] == "not_entitled"
    unknown_listing = await install(client, user, agent, unknown())
    assert unknown_listing.status_code == 404 and unknown_listing.json()["code"] == "listing_not_found"
    free = await published(shop)
    no_version = await install(client, user, agent, free["id"], version="9.9.9")
    assert no_version.status_code == 422 and no_version.json()["code"] == "version_not_available"


async def test_one_task_runs_per_installation_and_the_next_waits(client: httpx.AsyncClient, shop: Shop,
                                                                 user: Actor) -> None:
    listing = await published(shop)
    agent = await register(client, user)
    copy = await installed(client, user, agent, listing["id"])
    stop = await client.post(f"{V1}/installations/{copy['id']}/stop", headers=user.headers)
    resume = await client.post(f"{V1}/installations/{copy['id']}/resume", headers=user.headers)
    assert stop.status_code == 202 and resume.status_code == 202, (stop.text, resume.text)
    [first] = await agent.fetch()
    assert first["id"] == stop.json()["id"]
    assert await agent.fetch() == []  # resume waits for stop
    assert (await agent.result(first["id"])).status_code == 200
    assert (await installation(client, user, copy["id"]))["state"] == "stopped"
    [second] = await agent.fetch()
    assert second["id"] == resume.json()["id"]
    assert (await agent.result(second["id"])).status_code == 200
    assert (await installation(client, user, copy["id"]))["state"] == "installed"


async def test_operations_that_do_not_fit_the_state_are_refused(client: httpx.AsyncClient, shop: Shop,
                                                                user: Actor) -> None:
    listing = await published(shop)
    agent = await register(client, user)
    copy = await installed(client, user, agent, listing["id"])
    assert (await client.post(f"{V1}/installations/{copy['id']}/resume", headers=user.headers)).status_code == 409
    assert (await client.post(f"{V1}/installations/{copy['id']}/stop", headers=user.headers)).status_code == 202
    # stopped once the queued stop succeeds: stopping again or upgrading does not fit
    again = await client.post(f"{V1}/installations/{copy['id']}/stop", headers=user.headers)
    assert again.status_code == 409 and again.json()["code"] == "invalid_transition"
    latest = await client.post(f"{V1}/installations/{copy['id']}/upgrade", headers=user.headers)
    assert latest.status_code == 409


async def test_upgrade_uninstall_and_clone(client: httpx.AsyncClient, shop: Shop, user: Actor) -> None:
    listing = await published(shop)
    agent = await register(client, user)
    copy = await installed(client, user, agent, listing["id"])
    same = await client.post(f"{V1}/installations/{copy['id']}/upgrade", headers=user.headers)
    assert same.status_code == 409 and same.json()["code"] == "already_latest"
    await release(shop, listing["slug"], "1.1.0")
    upgrade = await client.post(f"{V1}/installations/{copy['id']}/upgrade", headers=user.headers)
    assert upgrade.status_code == 202 and upgrade.json()["version"] == "1.1.0", upgrade.text
    [handed] = await agent.fetch()
    assert (await installation(client, user, copy["id"]))["state"] == "upgrading"
    assert handed["from_version"] == "1.0.0" and handed["artifact"] is not None
    await agent.result(handed["id"])
    assert (await installation(client, user, copy["id"]))["version"] == "1.1.0"

    clone = await client.post(f"{V1}/installations/{copy['id']}/clone", headers=user.headers, json={"name": "second"})
    assert clone.status_code == 202, clone.text
    await agent.complete()
    second = await installation(client, user, clone.json()["installation_id"])
    assert (second["name"], second["state"], second["version"]) == ("second", "installed", "1.1.0")
    taken = await client.post(f"{V1}/installations/{copy['id']}/clone", headers=user.headers, json={"name": "second"})
    assert taken.status_code == 409 and taken.json()["code"] == "installation_name_taken"

    opened = await client.get(f"{V1}/installations/{copy['id']}/open", headers=user.headers)
    assert opened.status_code == 200 and (opened.json()["kind"], opened.json()["entry"]) == ("entry", "bin/run")

    gone = await client.post(f"{V1}/installations/{second['id']}/uninstall", headers=user.headers)
    assert gone.status_code == 202
    [handed] = await agent.fetch()
    assert (await installation(client, user, second["id"]))["state"] == "uninstalling"
    await agent.result(handed["id"])
    assert (await installation(client, user, second["id"]))["state"] == "uninstalled"
    listed = await client.get(f"{V1}/instances/{agent.instance_id}/installations", headers=user.headers)
    assert [item["id"] for item in listed.json()["items"]] == [copy["id"]]
    reused = await client.post(f"{V1}/installations/{copy['id']}/clone", headers=user.headers, json={"name": "second"})
    assert reused.status_code == 202  # the name is free again


async def test_a_failed_task_leaves_the_installation_failed_and_retries_up_to_the_limit(
        client: httpx.AsyncClient, shop: Shop, user: Actor) -> None:
    listing = await published(shop)
    agent = await register(client, user)
    created = await install(client, user, agent, listing["id"])
    task_id = created.json()["id"]
    await agent.complete(outcome="failed")
    assert (await installation(client, user, created.json()["installation_id"]))["state"] == "failed"
    for attempt in (2, 3):
        retried = await client.post(f"{V1}/tasks/{task_id}/retry", headers=user.headers)
        assert retried.status_code == 200 and (retried.json()["state"], retried.json()["attempt"]) == (
            "queued", attempt)
        [handed] = await agent.fetch()
        assert handed["attempt"] == attempt
        await agent.result(task_id, "failed")
    refused = await client.post(f"{V1}/tasks/{task_id}/retry", headers=user.headers)
    assert refused.status_code == 409 and refused.json()["code"] == "retry_limit_reached"
    not_failed = await install(client, user, agent, listing["id"], name="other")
    again = await client.post(f"{V1}/tasks/{not_failed.json()['id']}/retry", headers=user.headers)
    assert again.status_code == 409 and again.json()["code"] == "invalid_transition"


async def test_canceling_a_queued_install_frees_the_name(client: httpx.AsyncClient, shop: Shop,
                                                        user: Actor) -> None:
    listing = await published(shop)
    agent = await register(client, user)
    created = await install(client, user, agent, listing["id"])
    canceled = await client.post(f"{V1}/tasks/{created.json()['id']}/cancel", headers=user.headers)
    assert canceled.status_code == 200 and canceled.json()["state"] == "canceled"
    assert (await installation(client, user, created.json()["installation_id"]))["state"] == "uninstalled"
    assert await agent.fetch() == []
    assert (await install(client, user, agent, listing["id"])).status_code == 202
    twice = await client.post(f"{V1}/tasks/{created.json()['id']}/cancel", headers=user.headers)
    assert twice.status_code == 409


async def test_a_running_task_canceled_tells_the_agent_to_roll_back(client: httpx.AsyncClient, shop: Shop,
                                                                   user: Actor) -> None:
    listing = await published(shop)
    agent = await register(client, user)
    copy = await installed(client, user, agent, listing["id"])
    await release(shop, listing["slug"], "2.0.0")
    upgrade = await client.post(f"{V1}/installations/{copy['id']}/upgrade", headers=user.headers)
    [handed] = await agent.fetch()
    assert (await agent.progress(handed["id"], 10)).status_code == 200
    assert (await client.post(f"{V1}/tasks/{upgrade.json()['id']}/cancel", headers=user.headers)).status_code == 200
    told = await agent.progress(handed["id"], 20)
    assert told.status_code == 409 and told.json()["code"] == "task_canceled"
    assert (await agent.result(handed["id"])).json()["code"] == "task_canceled"
    after = await installation(client, user, copy["id"])
    assert (after["state"], after["version"], after["active_task_id"]) == ("installed", "1.0.0", None)


async def test_a_result_repeated_is_harmless(client: httpx.AsyncClient, shop: Shop, user: Actor) -> None:
    listing = await published(shop)
    agent = await register(client, user)
    await install(client, user, agent, listing["id"])
    [handed] = await agent.fetch()
    first = await agent.result(handed["id"])
    second = await agent.result(handed["id"])
    assert first.status_code == second.status_code == 200 and second.json() == first.json()
    contrary = await agent.result(handed["id"], "failed")
    assert contrary.status_code == 409


async def test_agents_see_only_their_own_instances_tasks(client: httpx.AsyncClient, shop: Shop, user: Actor,
                                                        actors: Actors) -> None:
    listing = await published(shop)
    mine = await register(client, user)
    created = await install(client, user, mine, listing["id"])
    other = await register(client, await actors.create(), name="other")
    assert await other.fetch() == []
    for answer in (await other.progress(created.json()["id"], 5), await other.result(created.json()["id"]),
                   await client.get(f"{V1}/agent/tasks/{created.json()['id']}/artifact", headers=other.headers)):
        assert answer.status_code == 404 and answer.json()["code"] == "task_not_found"
    stranger = await actors.create()
    for suffix in ("", "/cancel", "/retry"):
        method = "GET" if not suffix else "POST"
        answer = await client.request(method, f"{V1}/tasks/{created.json()['id']}{suffix}", headers=stranger.headers)
        assert answer.status_code == 404, suffix
    install_there = await install(client, stranger, mine, listing["id"])
    assert install_there.status_code == 404


async def test_the_long_poll_hands_out_a_task_queued_while_it_waits(client: httpx.AsyncClient, shop: Shop,
                                                                   user: Actor) -> None:
    listing = await published(shop)
    agent = await register(client, user)
    polling = asyncio.create_task(agent.fetch(wait=20))
    await asyncio.sleep(0)  # the poll is under way (it would find the task either way)
    created = await install(client, user, agent, listing["id"])
    handed = await polling
    assert [t["id"] for t in handed] == [created.json()["id"]]


async def test_wait_answers_200_once_the_task_finished(client: httpx.AsyncClient, shop: Shop, user: Actor) -> None:
    listing = await published(shop)
    agent = await register(client, user)

    async def the_agent() -> None:
        [handed] = await agent.fetch(wait=20)
        await agent.result(handed["id"])

    working = asyncio.create_task(the_agent())
    created = await client.post(f"{V1}/instances/{agent.instance_id}/installations", headers=user.headers,
                                params={"wait": 25}, json={"listing_id": listing["id"]})
    await working
    assert created.status_code == 200 and created.json()["state"] == "succeeded", created.text
    unfinished = await client.post(f"{V1}/installations/{created.json()['installation_id']}/stop",
                                   headers=user.headers, params={"wait": 0.2})
    assert unfinished.status_code == 202 and unfinished.json()["state"] == "queued"


async def test_an_agent_restarted_finds_its_tasks_in_flight(client: httpx.AsyncClient, shop: Shop, user: Actor,
                                                           runtime: Runtime) -> None:
    listing = await published(shop)
    agent = await register(client, user)
    created = await install(client, user, agent, listing["id"])
    await agent.fetch()
    again = await client.get(f"{V1}/agent/tasks", headers=agent.headers, params={"in_flight": True})
    assert [t["id"] for t in again.json()["items"]] == [created.json()["id"]]
    assert (await task(client, user, created.json()["id"]))["state"] == "dispatched"
    async with runtime.db.read_session() as session:
        row = await session.get(InstallTask, uuid.UUID(created.json()["id"]))
    assert row is not None and row.deadline_at is not None


async def test_a_failed_stop_can_be_retried(client: httpx.AsyncClient, shop: Shop, user: Actor) -> None:
    listing = await published(shop)
    agent = await register(client, user)
    copy = await installed(client, user, agent, listing["id"])
    stop = await client.post(f"{V1}/installations/{copy['id']}/stop", headers=user.headers)
    await agent.complete(outcome="failed")
    failed = await installation(client, user, copy["id"])
    assert (failed["state"], failed["version"]) == ("failed", "1.0.0")  # the version stays in place
    assert (await client.post(f"{V1}/tasks/{stop.json()['id']}/retry", headers=user.headers)).status_code == 200
    await agent.complete()
    assert (await installation(client, user, copy["id"]))["state"] == "stopped"


async def test_two_agents_polling_at_once_never_get_the_same_task(client: httpx.AsyncClient, shop: Shop,
                                                                  user: Actor) -> None:
    listing = await published(shop)
    agent = await register(client, user)
    created = [await install(client, user, agent, listing["id"], name=f"copy-{n}") for n in range(3)]
    first, second = await asyncio.gather(agent.fetch(), agent.fetch())
    handed = [t["id"] for t in first + second]
    assert sorted(handed) == sorted(c.json()["id"] for c in created)  # each exactly once


async def test_a_launch_url_is_filled_with_the_instance_host_and_settings(client: httpx.AsyncClient, shop: Shop,
                                                                         user: Actor) -> None:
    listing = await shop.listing()
    slug = listing["slug"]
    manifest = (f'[package]\nname = "{slug}"\nversion = "1.0.0"\nkind = "app"\nsummary = "Web app."\n'
                'license = "MIT"\n\n[config]\nschema = { type = "object", properties = { port = '
                '{ type = "integer", default = 8080 } } }\n\n[launch]\nurl = "http://{host}:{port}/"\n')
    uploaded = await shop.upload(slug, "1.0.0", data=package_bytes(slug, "1.0.0", manifest=manifest))
    assert uploaded.status_code == 201, uploaded.text
    await shop.submit(slug, "1.0.0")
    await shop.decide(slug, "1.0.0")
    agent = await register(client, user)
    await agent.heartbeat(resources={"host": "nas.local"})
    copy = await installed(client, user, agent, listing["id"], config={"port": 9000})
    opened = await client.get(f"{V1}/installations/{copy['id']}/open", headers=user.headers)
    assert opened.status_code == 200 and opened.json()["url"] == "http://nas.local:9000/"


async def test_deleting_an_instance_cancels_its_open_tasks(client: httpx.AsyncClient, shop: Shop,
                                                          user: Actor) -> None:
    listing = await published(shop)
    agent = await register(client, user)
    created = await install(client, user, agent, listing["id"])
    assert (await client.delete(f"{V1}/instances/{agent.instance_id}", headers=user.headers)).status_code == 204
    assert (await task(client, user, created.json()["id"]))["state"] == "canceled"


async def test_a_stopping_server_answers_an_open_long_poll_at_once(
        app, client: httpx.AsyncClient, user: Actor, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Shut-down sets ``app.state.stopping``; a poll waiting for tasks answers (empty) at once
    instead of holding the server's stop for the rest of its wait."""
    from mercato.installs import repository

    agent = await register(client, user)
    polling = asyncio.Event()
    count_queued = repository.count_queued

    async def counted(*args: object, **kwargs: object) -> int:
        polling.set()
        return await count_queued(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(repository, "count_queued", counted)
    poll = asyncio.ensure_future(agent.fetch(wait=30))
    await polling.wait()  # the poll is inside the server, waiting
    app.state.stopping.set()
    assert await poll == []
