"""Subscribers whose effect leaves the database (e-mail) run outside the delivery's write
transaction: the writer stays free while they wait, and they still run once per event."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.app.runtime import Runtime
from mercato.bus.events import CloudEvent
from mercato.bus.outbox import publish
from mercato.bus.registry import Registry
from mercato.bus.service import Bus
from mercato.config import Settings
from tests.bus import support


async def test_a_slow_outside_effect_does_not_hold_the_writer_and_runs_once(settings: Settings,
                                                                             runtime: Runtime) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    calls: list[str] = []
    registry = Registry()

    @registry.subscribe("test.ping", name="tests.outside", outside_transaction=True)
    async def outside(session: AsyncSession, event: CloudEvent) -> None:
        calls.append(str(event.id))
        started.set()
        await release.wait()  # a slow SMTP server

    await support.create_effects_table(runtime.db)
    bus = Bus(settings.model_copy(update={"bus_sweep_interval_seconds": 0.2}), runtime.db, registry,
              role="embedded")
    await bus.start()
    try:
        async with runtime.db.transaction() as session:
            event = CloudEvent(type="test.ping", subject="outside", data={"n": 1})
            await publish(session, event)
        await asyncio.wait_for(started.wait(), 10)
        # while the handler waits, another writer commits at once
        async with asyncio.timeout(2):
            async with runtime.db.transaction() as session:
                await session.execute(text(f"INSERT INTO {support.EFFECTS_TABLE} (subscriber, event_id, subject, n, "
                                           "pid) VALUES ('writer', 'w', 's', 0, 0)"))
        release.set()
        await _until_done(runtime)
    finally:
        await bus.stop()
    assert calls == [str(event.id)]


async def _until_done(runtime: Runtime) -> None:
    for _ in range(200):
        async with runtime.db.read_session() as session:
            state = await session.scalar(text("SELECT state FROM event_deliveries WHERE subscriber = 'tests.outside'"))
        if state == "done":
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the delivery is still {state}")
