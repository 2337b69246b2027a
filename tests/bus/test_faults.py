"""Faults: crashes at every relay and delivery step (F1), a wiped broker (F4), a broker
that duplicates and reorders (F5), and two worker processes sharing the load.

The end state after a fault and a restart must equal the fault-free run: every event
published once, every subscriber's effect exactly once, per-subject order kept."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import uuid

import pytest

from mercato.app.runtime import Runtime
from mercato.bus.service import Bus
from mercato.bus.transport import Transport
from mercato.config import Settings
from tests.bus import support

COUNT = 40
SUBSCRIBERS = ("tests.first", "tests.second", "tests.watch")


def _run_harness(database_url: str, *args: str, failpoints: str | None = None,
                 timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERCATO_")}
    if failpoints:
        env["MERCATO_FAILPOINTS"] = failpoints
    return subprocess.run([sys.executable, "-m", "tests.bus.harness", database_url, *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


async def _published_ids(runtime: Runtime) -> list[uuid.UUID]:
    from sqlalchemy import select

    from mercato.models import OutboxEvent

    async with runtime.db.read_session() as session:
        rows = await session.execute(select(OutboxEvent.id, OutboxEvent.data).where(OutboxEvent.type == "test.ping"))
        pairs = [(event_id, data["n"]) for event_id, data in rows]
    assert sorted(n for _, n in pairs) == list(range(COUNT)), "each event published exactly once"
    return [event_id for event_id, _ in pairs]


@pytest.mark.slow
@pytest.mark.parametrize("failpoint", [
    "outbox.after_insert=crash@5",      # the producer dies before its transaction commits
    "relay.after_fanout=crash@1",       # deliveries recorded, nothing handed to the broker
    "relay.after_kick=crash@9",         # some handed over, the process dies
    "delivery.after_effect=crash@7",    # a handler did its work, not committed
    "delivery.after_commit=crash@7",    # committed, the process dies before acknowledging
    "tests.watch.after_effect=crash@2",  # an observer's batch did its work, cursor not committed
])
async def test_a_crash_at_any_step_then_a_restart_ends_as_the_fault_free_run(
        failpoint: str, runtime: Runtime, database_url: str) -> None:
    crashed = await asyncio.to_thread(_run_harness, database_url, str(COUNT), failpoints=failpoint)
    assert crashed.returncode == 137, crashed.stderr[-2000:]
    restarted = await asyncio.to_thread(_run_harness, database_url, str(COUNT))
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    ids = await _published_ids(runtime)
    rows = await support.effects(runtime.db)
    support.assert_exactly_once(rows, SUBSCRIBERS, ids)
    for subscriber in SUBSCRIBERS:
        support.assert_in_order_per_subject(rows, subscriber)


class ChaosTransport(Transport):
    """In-process transport that duplicates (p = 0.3) and reorders deliveries."""

    def __init__(self, *, seed: int, on_job) -> None:  # type: ignore[no-untyped-def]
        super().__init__(None, queue="chaos", on_job=on_job)
        self.random = random.Random(seed)
        self.tasks: set[asyncio.Task[None]] = set()

    async def kick(self, subscriber: str, event_id: uuid.UUID) -> None:
        copies = 2 if self.random.random() < 0.3 else 1
        for _ in range(copies):
            delay = self.random.uniform(0, 0.05)  # out of order
            task = asyncio.create_task(self._later(delay, subscriber, event_id))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _later(self, delay: float, subscriber: str, event_id: uuid.UUID) -> None:
        await asyncio.sleep(delay)
        await self._on_job(subscriber, event_id)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
async def test_duplicated_and_reordered_deliveries_still_give_exactly_once_in_order(
        seed: int, settings: Settings, runtime: Runtime) -> None:
    await support.create_effects_table(runtime.db)
    configured = settings.model_copy(update={"bus_redelivery_timeout_seconds": 0.5, "bus_sweep_interval_seconds": 0.1})
    holder: dict[str, Bus] = {}
    transport = ChaosTransport(seed=seed, on_job=lambda s, e: holder["bus"].deliverer.deliver(s, e))
    bus = Bus(configured, runtime.db, support.test_registry(), role="embedded", transport=transport)
    holder["bus"] = bus
    await bus.start()
    try:
        ids = await support.publish_pings(runtime.db, 60, subjects=4)
        await bus.wait_idle()
        rows = await support.effects(runtime.db)
    finally:
        await bus.stop()
    support.assert_exactly_once(rows, SUBSCRIBERS, ids)
    for subscriber in SUBSCRIBERS:
        support.assert_in_order_per_subject(rows, subscriber)


@pytest.mark.slow
@pytest.mark.redis
async def test_a_wiped_broker_is_re_driven_from_the_database(settings: Settings, runtime: Runtime) -> None:
    from redis.asyncio import Redis

    from tests.support.backends import REDIS_URL

    assert REDIS_URL
    queue = f"mercato-wipe-{uuid.uuid4().hex[:8]}"
    configured = settings.model_copy(update={
        "broker_url": REDIS_URL, "bus_queue": queue, "bus_redelivery_timeout_seconds": 1.0,
        "bus_sweep_interval_seconds": 0.2})
    await support.create_effects_table(runtime.db)
    bus = Bus(configured, runtime.db, support.test_registry(), role="worker")
    await bus.start()
    try:
        ids = await support.publish_pings(runtime.db, 30)
        async with Redis.from_url(REDIS_URL) as client:
            await client.delete(queue)  # everything the broker held is gone, group included
        ids += await support.publish_pings(runtime.db, 30, start=30)
        await bus.wait_idle(timeout=90)
        rows = await support.effects(runtime.db)
    finally:
        await bus.stop()
        async with Redis.from_url(REDIS_URL) as client:
            await client.delete(queue)
    support.assert_exactly_once(rows, SUBSCRIBERS, ids)


@pytest.mark.slow
@pytest.mark.redis
async def test_two_worker_processes_handle_a_thousand_events_exactly_once(runtime: Runtime, database_url: str) -> None:
    from redis.asyncio import Redis

    from tests.support.backends import REDIS_URL

    assert REDIS_URL
    count = 1000
    queue = f"mercato-two-{uuid.uuid4().hex[:8]}"
    await support.create_effects_table(runtime.db)
    await support.publish_pings(runtime.db, count, subjects=50)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERCATO_")}
    command = [sys.executable, "-m", "tests.bus.harness", database_url, str(count), "--broker", REDIS_URL,
               "--queue", queue, "--no-publish", "--timeout", "240"]
    # Popen only starts them (it does not wait); their output is read in threads below.
    workers = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,  # noqa: ASYNC220
                                text=True)
               for _ in range(2)]
    try:
        results = [await asyncio.to_thread(w.communicate, timeout=300) for w in workers]
        assert [w.returncode for w in workers] == [0, 0], [r[1][-2000:] for r in results]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
        async with Redis.from_url(REDIS_URL) as client:
            await client.delete(queue)
    rows = await support.effects(runtime.db)
    ids = await _all_ping_ids(runtime)
    support.assert_exactly_once(rows, SUBSCRIBERS, ids)
    assert len({row[4] for row in rows}) == 2, "both workers took part"
    for subscriber in SUBSCRIBERS:
        support.assert_in_order_per_subject(rows, subscriber)


async def _all_ping_ids(runtime: Runtime) -> list[uuid.UUID]:
    from sqlalchemy import select

    from mercato.models import OutboxEvent

    async with runtime.db.read_session() as session:
        return list(await session.scalars(select(OutboxEvent.id).where(OutboxEvent.type == "test.ping")))


@pytest.mark.slow
@pytest.mark.nats
async def test_a_nats_server_restarted_empty_keeps_the_bus_running(settings: Settings, runtime: Runtime) -> None:
    """F4 on NATS JetStream: the server is killed and started again with an empty store (no
    stream, no consumer) under a running worker, which is not restarted."""
    from tests.support.private_servers import private_nats

    with private_nats() as server:
        configured = settings.model_copy(update={
            "broker_url": server.url, "bus_queue": f"mercato-nats-{uuid.uuid4().hex[:8]}",
            "bus_redelivery_timeout_seconds": 1.0, "bus_sweep_interval_seconds": 0.2})
        await support.create_effects_table(runtime.db)
        bus = Bus(configured, runtime.db, support.test_registry(), role="worker")
        await bus.start()
        try:
            ids = await support.publish_pings(runtime.db, 30)
            await support.wait_for_effects(runtime.db, 20)  # the bus is flowing; some jobs are still in NATS
            server.stop(kill=True)
            server.wipe()
            server.start()
            ids += await support.publish_pings(runtime.db, 30, start=30)
            rows = await support.wait_for_effects(runtime.db, len(SUBSCRIBERS) * len(ids), timeout=90)
            await bus.ping()  # the stream is back: the broker counts as up again
        finally:
            await bus.stop()
        await asyncio.sleep(0.5)  # a late duplicate would show up now
        rows = await support.effects(runtime.db)
    support.assert_exactly_once(rows, SUBSCRIBERS, ids)
