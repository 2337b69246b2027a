"""E2 deliveries: signed, only the publisher's own events, retried, disabled after failures,
signed with both secrets during a rotation, redirects not followed, history visible."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import httpx
import pytest

from mercato.app.runtime import Runtime
from mercato.kit.clock import utcnow
from tests.support.actors import Actor, Actors
from tests.support.receivers import Receiver
from tests.webhooks.support import V1, Driver, World, signatures_valid_for

LATER = timedelta(days=1)  # past any backoff


@pytest.mark.parametrize("background_bus", [True])
async def test_an_owners_webhook_gets_exactly_one_signed_delivery_through_the_running_bus(
        world: World, receiver: Receiver, background_bus: bool) -> None:
    """The app's own embedded bus (as in `mercato serve`): relay, fan-out subscriber, send sweep."""
    created = (await world.create(receiver.url())).json()
    await world.touch(name="Renamed once")
    [received] = await receiver.wait_for(1)
    await asyncio.sleep(1.5)  # a duplicate would arrive now
    assert len(receiver.requests) == 1
    assert received.method == "POST" and received.path == "/hook"
    assert received.headers["content-type"] == "application/json"
    assert received.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert signatures_valid_for(created["secret"], received)
    event = json.loads(received.body)
    assert event["specversion"] == "1.0" and event["type"] == "publisher.updated"
    assert event["data"]["slug"] == world.slug and event["data"]["changed"] == ["name"]
    deliveries = (await world.client.get(f"{V1}/webhooks/{created['id']}/deliveries",
                                         headers=world.owner.headers)).json()["items"]
    assert [d["id"] for d in deliveries] == [received.headers["webhook-id"]]
    assert deliveries[0]["state"] == "succeeded" and deliveries[0]["event_id"] == event["id"]
    assert [(a["attempt"], a["status_code"]) for a in deliveries[0]["history"]] == [(1, 200)]


async def test_events_of_another_publisher_are_not_sent(
        world: World, actors: Actors, receiver: Receiver, driver: Driver) -> None:
    assert (await world.create(receiver.url(), event_types=["*"])).status_code == 201
    other = await actors.create()
    theirs = await actors.publisher(other)
    other = await actors.login(other.email, other.password, user_id=other.id)
    await world.touch(theirs["slug"], actor=other)
    await driver.fan_out()
    assert await driver.send() == 0
    assert receiver.requests == []
    await world.touch()
    await driver.fan_out()
    assert await driver.send() == 1
    assert json.loads(receiver.requests[0].body)["data"]["slug"] == world.slug


async def test_only_the_subscribed_event_types_are_sent(
        world: World, client: httpx.AsyncClient, actors: Actors, receiver: Receiver, driver: Driver) -> None:
    assert (await world.create(receiver.url(), event_types=["publisher.member_added"])).status_code == 201
    await world.touch()
    member = await actors.create()
    await client.post(f"{V1}/publishers/{world.slug}/members", headers=world.owner.headers,
                      json={"email": member.email})
    await driver.fan_out()
    await driver.send()
    assert [json.loads(r.body)["type"] for r in receiver.requests] == ["publisher.member_added"]


async def test_a_store_wide_webhook_gets_every_publishers_events(
        world: World, admin: Actor, actors: Actors, receiver: Receiver, driver: Driver) -> None:
    created = await world.create(receiver.url(), event_types=["publisher.updated"], actor=admin, publisher=None)
    assert created.status_code == 201
    other = await actors.create()
    theirs = await actors.publisher(other)
    await world.touch()
    await world.touch(theirs["slug"], actor=admin)
    await driver.fan_out()
    await driver.send()
    assert sorted(json.loads(r.body)["data"]["slug"] for r in receiver.requests) == sorted([world.slug, theirs["slug"]])


async def test_a_failed_attempt_is_retried_with_the_same_id_until_it_succeeds(
        world: World, receiver: Receiver, driver: Driver, client: httpx.AsyncClient) -> None:
    created = (await world.create(receiver.url())).json()
    receiver.answer(500, 503)
    await world.touch()
    await driver.fan_out()
    assert await driver.send() == 1
    [delivery] = await driver.deliveries()
    assert delivery.state == "pending" and delivery.attempts == 1 and delivery.last_status_code == 500
    assert delivery.next_attempt_at is not None and delivery.next_attempt_at > driver.now
    assert await driver.send() == 0  # not due yet: backoff
    assert await driver.send(later=LATER) == 1
    assert await driver.send(later=LATER) == 1
    assert [r.headers["webhook-id"] for r in receiver.requests] == [str(delivery.id)] * 3
    assert all(signatures_valid_for(created["secret"], r) for r in receiver.requests)
    [item] = (await client.get(f"{V1}/webhooks/{created['id']}/deliveries",
                               headers=world.owner.headers)).json()["items"]
    assert item["state"] == "succeeded" and item["attempts"] == 3 and item["last_status_code"] == 200
    assert [(a["status_code"], a["error"] is None)
            for a in item["history"]] == [(500, False), (503, False), (200, True)]
    assert all(a["duration_ms"] >= 0 for a in item["history"])
    assert await driver.send(later=LATER) == 0


async def test_a_delivery_fails_for_good_after_the_last_attempt(
        world: World, receiver: Receiver, driver: Driver, runtime: Runtime) -> None:
    runtime.settings.webhook_max_attempts = 3
    receiver.default = (500, {})
    await world.create(receiver.url())
    await world.touch()
    await driver.fan_out()
    for _ in range(5):
        await driver.send(later=LATER)
    [delivery] = await driver.deliveries()
    assert len(receiver.requests) == 3
    assert delivery.state == "failed" and delivery.attempts == 3 and delivery.next_attempt_at is None


async def test_a_webhook_is_disabled_after_consecutive_failures_and_can_be_re_enabled(
        world: World, receiver: Receiver, driver: Driver, runtime: Runtime, client: httpx.AsyncClient) -> None:
    runtime.settings.webhook_disable_after_failures = 3
    receiver.default = (500, {})
    created = (await world.create(receiver.url())).json()
    path = f"{V1}/webhooks/{created['id']}"
    await world.touch()
    await driver.fan_out()
    for _ in range(5):
        await driver.send(later=LATER)
    assert len(receiver.requests) == 3
    webhook = (await client.get(path, headers=world.owner.headers)).json()
    assert webhook["active"] is False and webhook["consecutive_failures"] == 3
    assert "3 failed attempts" in webhook["disabled_reason"]
    await world.touch()
    assert await driver.fan_out() == 1
    assert await driver.send(later=LATER) == 0  # disabled: nothing new, nothing retried

    receiver.default = (204, {})
    enabled = await client.patch(path, headers=world.owner.headers, json={"active": True})
    assert enabled.status_code == 200, enabled.text
    assert enabled.json()["active"] is True and enabled.json()["consecutive_failures"] == 0
    assert enabled.json()["disabled_reason"] is None
    assert await driver.send(later=LATER) == 1  # the pending delivery goes out again
    [delivery] = await driver.deliveries()
    assert delivery.state == "succeeded"


async def test_a_success_resets_the_failure_count(
        world: World, receiver: Receiver, driver: Driver, runtime: Runtime, client: httpx.AsyncClient) -> None:
    runtime.settings.webhook_disable_after_failures = 3
    created = (await world.create(receiver.url())).json()
    receiver.answer(500, 500, 200, 500, 500)
    await world.touch()
    await driver.fan_out()
    for _ in range(3):
        await driver.send(later=LATER)
    await world.touch()
    await driver.fan_out()
    for _ in range(2):
        await driver.send(later=LATER)
    assert len(receiver.requests) == 5
    webhook = (await client.get(f"{V1}/webhooks/{created['id']}", headers=world.owner.headers)).json()
    assert webhook["active"] is True and webhook["consecutive_failures"] == 2


async def test_during_a_rotation_deliveries_are_signed_with_both_secrets(
        world: World, receiver: Receiver, driver: Driver, client: httpx.AsyncClient) -> None:
    created = (await world.create(receiver.url())).json()
    rotated = (await client.post(f"{V1}/webhooks/{created['id']}/rotate-secret", headers=world.owner.headers)).json()
    await world.touch()
    await driver.fan_out()
    await driver.send()
    [received] = receiver.requests
    assert len(received.headers["webhook-signature"].split(" ")) == 2
    assert signatures_valid_for(created["secret"], received)
    assert signatures_valid_for(rotated["secret"], received)

    await world.touch()
    await driver.fan_out()
    await driver.send(later=timedelta(hours=25))  # the overlap is over
    latest = receiver.requests[-1]
    assert len(latest.headers["webhook-signature"].split(" ")) == 1
    assert signatures_valid_for(rotated["secret"], latest)
    assert not signatures_valid_for(created["secret"], latest)


async def test_a_redirect_is_a_failed_attempt_and_is_not_followed(
        world: World, receiver: Receiver, driver: Driver) -> None:
    receiver.answer((302, {"Location": receiver.url("/elsewhere")}))
    await world.create(receiver.url())
    await world.touch()
    await driver.fan_out()
    await driver.send()
    await asyncio.sleep(0.2)
    assert [r.path for r in receiver.requests] == ["/hook"]
    [delivery] = await driver.deliveries()
    assert delivery.state == "pending" and delivery.last_status_code == 302
    assert "redirect" in (delivery.last_error or "")


async def test_an_unreachable_receiver_is_a_failed_attempt(
        world: World, receiver: Receiver, driver: Driver) -> None:
    await world.create(receiver.url())
    await receiver.stop()  # nothing listens on the port any more
    await world.touch()
    await driver.fan_out()
    assert await driver.send() == 1
    [delivery] = await driver.deliveries()
    assert delivery.state == "pending" and delivery.last_status_code is None and delivery.last_error


async def test_a_slow_receiver_times_out(world: World, receiver: Receiver, driver: Driver, runtime: Runtime) -> None:
    hang = asyncio.Event()

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await hang.wait()
        writer.close()

    server = await asyncio.start_server(stall, "127.0.0.1", 0)
    try:
        await world.create(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook")
        await world.touch()
        await driver.fan_out()
        fast = runtime.settings.model_copy(update={"webhook_timeout_seconds": 0.5})
        assert await driver.send(settings=fast) == 1
    finally:
        hang.set()
        server.close()
        await server.wait_closed()
    [delivery] = await driver.deliveries()
    assert delivery.state == "pending" and "timed out" in (delivery.last_error or "")


async def test_two_senders_at_once_send_a_delivery_once(
        world: World, receiver: Receiver, driver: Driver, runtime: Runtime) -> None:
    await world.create(receiver.url())
    await world.touch()
    await driver.fan_out()
    from mercato.webhooks.sending import send_due

    counts = await asyncio.gather(*(send_due(runtime.db, runtime.settings) for _ in range(3)))
    assert sorted(counts) == [0, 0, 1]
    assert len(receiver.requests) == 1


async def test_a_sender_that_died_mid_attempt_leaves_a_lease_that_runs_out(
        world: World, receiver: Receiver, driver: Driver, runtime: Runtime) -> None:
    from mercato.webhooks import repository

    await world.create(receiver.url())
    await world.touch()
    await driver.fan_out()
    [delivery] = await driver.deliveries()
    driver.now = utcnow()
    async with runtime.db.transaction() as session:  # taken by a sender that then crashed
        assert await repository.take(session, delivery.id, now=driver.now,
                                     lease_until=driver.now + timedelta(minutes=1))
    assert await driver.send() == 0
    assert await driver.send(later=timedelta(minutes=2)) == 1
    [delivery] = await driver.deliveries()
    assert delivery.state == "succeeded" and delivery.attempts == 2
    assert [r.headers["webhook-id"] for r in receiver.requests] == [str(delivery.id)]


async def test_deleting_a_webhook_stops_its_deliveries(
        world: World, receiver: Receiver, driver: Driver, client: httpx.AsyncClient) -> None:
    created = (await world.create(receiver.url())).json()
    await world.touch()
    await driver.fan_out()
    assert (await client.delete(f"{V1}/webhooks/{created['id']}", headers=world.owner.headers)).status_code == 204
    assert await driver.send() == 0
    assert await driver.delivery_count() == 0


async def test_a_webhook_gets_no_events_from_before_it_existed(
        world: World, receiver: Receiver, driver: Driver) -> None:
    await world.touch()
    await world.create(receiver.url())
    await driver.fan_out()
    assert await driver.delivery_count() == 0


async def test_the_host_header_names_the_host_while_the_connection_goes_to_the_checked_address(
        world: World, receiver: Receiver, driver: Driver, runtime: Runtime) -> None:
    runtime.settings.outbound_allowed_hosts = ["localhost"]
    await world.create(f"http://localhost:{receiver.port}/hook")
    await world.touch()
    await driver.fan_out()
    await driver.send()
    [received] = receiver.requests  # localhost may resolve to ::1 first: nothing listens there, 127.0.0.1 is next
    assert received.headers["host"] == f"localhost:{receiver.port}"


@pytest.mark.parametrize("state", ["succeeded", "pending"])
async def test_the_delivery_history_filters_by_state_and_pages(
        world: World, receiver: Receiver, driver: Driver, client: httpx.AsyncClient, state: str) -> None:
    created = (await world.create(receiver.url())).json()
    receiver.answer(200, 200, 500)
    for _ in range(3):
        await world.touch()
    await driver.fan_out()
    await driver.send()
    path = f"{V1}/webhooks/{created['id']}/deliveries"
    filtered = (await client.get(path, headers=world.owner.headers, params={"state": state})).json()["items"]
    assert len(filtered) == (2 if state == "succeeded" else 1)
    first = (await client.get(path, headers=world.owner.headers, params={"limit": 2})).json()
    rest = (await client.get(path, headers=world.owner.headers,
                             params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert len(first["items"]) == 2 and len(rest["items"]) == 1 and rest["next_cursor"] is None


async def test_finished_deliveries_past_the_retention_are_purged(
        world: World, receiver: Receiver, driver: Driver, runtime: Runtime) -> None:
    from sqlalchemy import update

    from mercato.models import WebhookDelivery
    from mercato.webhooks import service

    receiver.answer(200, 500)
    await world.create(receiver.url())
    await world.touch()
    await world.touch()
    await driver.fan_out()
    await driver.send()
    old = utcnow() - timedelta(days=runtime.settings.webhook_delivery_retention_days + 1)
    async with runtime.db.transaction() as session:  # the test is about old rows: age them directly
        await session.execute(update(WebhookDelivery).values(created_at=old))
    async with runtime.db.transaction() as session:
        assert await service.purge_finished(session, settings=runtime.settings) == 1
    [kept] = await driver.deliveries()
    assert kept.state == "pending"  # still owed: kept whatever its age
