"""A store process for fault tests: ``python -m tests.bus.harness URL COUNT [--broker URL]``.

It publishes the ``test.ping`` events 0..COUNT-1 that are not in the outbox yet (an
idempotent producer, so a restart resumes where a crash stopped it), runs a bus with the
test subscribers until every delivery is done, then exits 0. Failpoints come from
``MERCATO_FAILPOINTS``; a crash exits 137.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from sqlalchemy import func, select

from mercato.bus.events import CloudEvent
from mercato.bus.outbox import publish
from mercato.bus.service import Bus
from mercato.config import Settings
from mercato.kit.db import Database
from mercato.models import OutboxEvent
from tests.bus import support


async def published_numbers(db: Database) -> set[int]:
    async with db.read_session() as session:
        rows = await session.scalars(select(OutboxEvent.data).where(OutboxEvent.type == "test.ping"))
        return {int(data["n"]) for data in rows}


async def publish_missing(db: Database, count: int, subjects: int) -> None:
    have = await published_numbers(db)
    for n in range(count):
        if n in have:
            continue
        async with db.transaction() as session:
            await publish(session, CloudEvent(type="test.ping", subject=f"subject-{n % subjects}", data={"n": n}))


async def published_count(db: Database) -> int:
    async with db.read_session() as session:
        return int(await session.scalar(select(func.count()).select_from(OutboxEvent)
                                        .where(OutboxEvent.type == "test.ping")) or 0)


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("database_url")
    parser.add_argument("count", type=int)
    parser.add_argument("--broker")
    parser.add_argument("--queue", default="mercato-harness")
    parser.add_argument("--subjects", type=int, default=7)
    parser.add_argument("--no-publish", action="store_true")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()

    settings = Settings(database_url=args.database_url, broker_url=args.broker, bus_queue=args.queue,
                        bus_redelivery_timeout_seconds=1.0, bus_sweep_interval_seconds=0.2,
                        bus_retry_base_seconds=0.05, bus_retry_max_seconds=0.5, testing=True)
    db = Database(args.database_url)
    await support.create_effects_table(db)
    registry = support.test_registry()
    bus = Bus(settings, db, registry, role="worker" if args.broker else "embedded")
    await bus.start()
    try:
        if not args.no_publish:
            await publish_missing(db, args.count, args.subjects)
        if await published_count(db) != args.count:
            print("harness: the producer did not publish every event", file=sys.stderr)
            return 4
        try:
            await bus.wait_idle(timeout=args.timeout)
        except TimeoutError:
            print("harness: timed out", file=sys.stderr)
            return 3
        return 0
    finally:
        await bus.stop()
        await db.dispose()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
