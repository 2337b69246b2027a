"""Bus throughput: end-to-end delivered events per second per broker, against a raw loop
on the same broker in the same run (ratio = mercato / raw).

    python -m bench.bus [--events 2000] [--database-url postgresql+asyncpg://…]

Mercato's figure covers the whole path: publish into the outbox (one transaction per
100 events), relay fan-out to two subscribers, broker hand-off, delivery with the inbox
record and the handler's effect, each in its own transaction. The raw loop only moves
messages through the broker (publish N, consume and ack N), so the ratio shows what the
database-backed guarantees cost. Needs the local Redis, RabbitMQ and NATS servers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

BROKERS = {
    "in-process": None,
    "redis": "redis://127.0.0.1:6379/0",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672/",
    "nats": "nats://127.0.0.1:4222",
}


async def raw_in_process(count: int) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue()
    started = time.perf_counter()

    async def consume() -> None:
        for _ in range(count):
            await queue.get()
            queue.task_done()

    consumer = asyncio.create_task(consume())
    for n in range(count):
        await queue.put(n)
    await consumer
    return count / (time.perf_counter() - started)


async def raw_redis(url: str, count: int) -> float:
    from redis.asyncio import Redis

    stream, group = f"bench-{uuid.uuid4().hex[:8]}", "bench"
    async with Redis.from_url(url) as client:
        await client.xgroup_create(stream, group, id="0", mkstream=True)
        started = time.perf_counter()
        for n in range(count):
            await client.xadd(stream, {"n": n})
        seen = 0
        while seen < count:
            batch = await client.xreadgroup(group, "c1", {stream: ">"}, count=100, block=1000)
            for _, messages in batch:
                for message_id, _ in messages:
                    await client.xack(stream, group, message_id)
                    seen += 1
        rate = count / (time.perf_counter() - started)
        await client.delete(stream)
    return rate


async def raw_rabbitmq(url: str, count: int) -> float:
    import aio_pika

    name = f"bench-{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=100)
        queue = await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
        started = time.perf_counter()
        for n in range(count):
            await channel.default_exchange.publish(aio_pika.Message(str(n).encode(),
                                                                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                                                   routing_key=name)
        seen = 0
        async with queue.iterator() as messages:
            async for message in messages:
                await message.ack()
                seen += 1
                if seen >= count:
                    break
        rate = count / (time.perf_counter() - started)
        await queue.delete(if_unused=False, if_empty=False)
    return rate


async def raw_nats(url: str, count: int) -> float:
    import nats

    stream = f"bench-{uuid.uuid4().hex[:8]}"
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        await js.add_stream(name=stream, subjects=[f"{stream}.jobs"])
        started = time.perf_counter()
        for n in range(count):
            await js.publish(f"{stream}.jobs", str(n).encode())
        subscription = await js.pull_subscribe(f"{stream}.jobs", durable="bench")
        seen = 0
        while seen < count:
            for message in await subscription.fetch(100, timeout=5):
                await message.ack()
                seen += 1
        rate = count / (time.perf_counter() - started)
        await js.delete_stream(stream)
    finally:
        await client.close()
    return rate


async def mercato_rate(database_url: str, broker: str | None, count: int) -> float:
    from mercato.bus.service import Bus
    from mercato.config import Settings
    from mercato.kit.db import Database
    from tests.bus import support

    queue = f"bench-{uuid.uuid4().hex[:8]}"
    settings = Settings(database_url=database_url, broker_url=broker, bus_queue=queue, testing=True)
    db = Database(database_url)
    await support.create_effects_table(db)
    bus = Bus(settings, db, support.test_registry(), role="worker" if broker else "embedded")
    await bus.start()
    try:
        started = time.perf_counter()
        for start in range(0, count, 100):
            await support.publish_pings(db, min(100, count - start), subjects=count, start=start)
        await support.wait_for_effects(db, 2 * count, timeout=600)
        return 2 * count / (time.perf_counter() - started)
    finally:
        await bus.stop()
        await db.dispose()


async def _admin(url: str, statement: str) -> None:
    engine = create_async_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(statement))
    await engine.dispose()


def fresh_database(base_url: str) -> str:
    """A migrated database of its own (PostgreSQL) or a new SQLite file."""
    if base_url.startswith("sqlite"):
        path = Path(f"/tmp/mercato-bench-{uuid.uuid4().hex[:8]}.db")
        url = f"sqlite+aiosqlite:///{path}"
    else:
        name = f"mercato_bench_{uuid.uuid4().hex[:8]}"
        asyncio.run(_admin(base_url, f'CREATE DATABASE "{name}"'))
        url = make_url(base_url).set(database=name).render_as_string(hide_password=False)
    subprocess.run([sys.executable, "-m", "mercato", "migrate"], check=True, capture_output=True,
                   env={"MERCATO_DATABASE_URL": url, "MERCATO_DATA_DIR": "/tmp/mercato-bench", "PATH": ""})
    return url


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--brokers", default=",".join(BROKERS))
    parser.add_argument("--json", default="bench/results/bus.json")
    args = parser.parse_args()
    results = {}
    for name in args.brokers.split(","):
        url = BROKERS[name]
        raw = asyncio.run({
            "in-process": lambda url=url: raw_in_process(args.events),
            "redis": lambda url=url: raw_redis(url, args.events),  # type: ignore[arg-type]
            "rabbitmq": lambda url=url: raw_rabbitmq(url, args.events),  # type: ignore[arg-type]
            "nats": lambda url=url: raw_nats(url, args.events),  # type: ignore[arg-type]
        }[name]())
        database = fresh_database(args.database_url)
        try:
            mercato = asyncio.run(mercato_rate(database, url, args.events))
        finally:
            if not database.startswith("sqlite"):
                asyncio.run(_admin(args.database_url,
                                   f'DROP DATABASE IF EXISTS "{make_url(database).database}" WITH (FORCE)'))
        results[name] = {"raw_per_s": round(raw), "mercato_deliveries_per_s": round(mercato),
                         "ratio": round(mercato / raw, 4)}
        print(f"BUS-{name} mercato={mercato:.0f}/s raw={raw:.0f}/s ratio={mercato / raw:.4f}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
