"""One contract for every broker: the in-process one and the real Redis Streams, RabbitMQ
and NATS JetStream servers (those run when their URL is in the environment: CI's second pass)."""

from __future__ import annotations

import os
import uuid

import pytest

from mercato.app.runtime import Runtime
from mercato.bus import repository
from mercato.bus.service import Bus
from mercato.config import Settings
from tests.bus import support

BROKERS = [
    pytest.param(None, id="in-process"),
    pytest.param(os.environ.get("MERCATO_TEST_REDIS_URL"), id="redis", marks=pytest.mark.redis),
    pytest.param(os.environ.get("MERCATO_TEST_AMQP_URL"), id="rabbitmq", marks=pytest.mark.rabbitmq),
    pytest.param(os.environ.get("MERCATO_TEST_NATS_URL"), id="nats", marks=pytest.mark.nats),
]


@pytest.fixture(params=BROKERS)
async def bus(request: pytest.FixtureRequest, settings: Settings, runtime: Runtime):  # type: ignore[no-untyped-def]
    broker_url = request.param
    queue = f"mercato-test-{uuid.uuid4().hex[:10]}"
    configured = settings.model_copy(update={
        "broker_url": broker_url, "bus_queue": queue, "bus_retry_base_seconds": 0.05,
        "bus_retry_max_seconds": 0.2, "bus_max_attempts": 3, "bus_redelivery_timeout_seconds": 2.0,
        "bus_sweep_interval_seconds": 0.2})
    await support.create_effects_table(runtime.db)
    running = Bus(configured, runtime.db, support.test_registry(), role="embedded" if broker_url is None else "worker")
    await running.start()
    yield running
    await running.stop()
    await _cleanup_broker(broker_url, queue)


async def _cleanup_broker(url: str | None, queue: str) -> None:
    if url is None:
        return
    if url.startswith("redis"):
        from redis.asyncio import Redis

        async with Redis.from_url(url) as client:
            await client.delete(queue)
    elif url.startswith("amqp"):
        import aio_pika

        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel()
            for name in (queue, f"{queue}-rejected"):
                await channel.queue_delete(name)
            await channel.exchange_delete(f"{queue}-exchange")
    elif url.startswith("nats"):
        import nats

        client = await nats.connect(url)
        try:
            await client.jetstream().delete_stream(queue.replace(".", "-"))
        finally:
            await client.close()


SUBSCRIBERS = ("tests.first", "tests.second", "tests.watch")


async def test_every_subscriber_handles_every_event_exactly_once(bus: Bus) -> None:
    ids = await support.publish_pings(bus.db, 60)
    await bus.wait_idle()
    support.assert_exactly_once(await support.effects(bus.db), SUBSCRIBERS, ids)


async def test_events_of_one_subject_are_handled_in_order(bus: Bus) -> None:
    await support.publish_pings(bus.db, 40, subjects=3)
    await bus.wait_idle()
    rows = await support.effects(bus.db)
    for subscriber in SUBSCRIBERS:
        support.assert_in_order_per_subject(rows, subscriber)


async def test_a_repeated_delivery_is_a_no_op(bus: Bus) -> None:
    ids = await support.publish_pings(bus.db, 3)
    await bus.wait_idle()
    for event_id in ids:  # deliver again, directly and through the broker
        assert await bus.deliverer.deliver("tests.first", event_id) == "skipped"
        await bus.transport.kick("tests.second", event_id)
        await bus.transport.kick("tests.watch", event_id)  # an observer has no delivery to repeat
    bus.observers.wake()
    await bus.wait_idle()
    support.assert_exactly_once(await support.effects(bus.db), SUBSCRIBERS, ids)


@pytest.mark.parametrize("subscriber", ["tests.poison", "tests.poison_watch"])
async def test_a_poison_event_becomes_a_dead_letter_and_replays_once_fixed(bus: Bus, subscriber: str) -> None:
    from mercato.bus.events import CloudEvent
    from mercato.bus.outbox import publish

    support.POISON_FIXED["value"] = False
    event = CloudEvent(type="test.poison", subject="poison", data={})
    async with bus.db.transaction() as session:
        await publish(session, event)
    await bus.wait_idle()  # a dead letter is owed nothing more
    async with bus.db.read_session() as session:
        delivery = await repository.delivery(session, subscriber, event.id)
    assert delivery is not None and delivery.state == "dead" and delivery.attempts == 3
    assert "poison event" in (delivery.last_error or "")
    support.POISON_FIXED["value"] = True
    try:
        async with bus.db.transaction() as session:
            revived = await repository.revive(session, delivery.id, delivery.updated_at)
        assert revived is not None
        await bus.transport.kick(subscriber, event.id)
        await bus.wait_idle()
        rows = [r for r in await support.effects(bus.db) if r[0] == subscriber]
        assert [r[1] for r in rows] == [str(event.id)]
    finally:
        support.POISON_FIXED["value"] = False
