"""At start an observer catches up only when it is behind the relay (or holds an event for a
retry): a store that starts with its observers caught up runs no observer transaction until
the relay has something for them."""

from __future__ import annotations

import asyncio
from typing import Any

from mercato.app.runtime import Runtime
from mercato.bus import repository
from mercato.bus.events import CloudEvent
from mercato.bus.observers import Observers
from mercato.bus.outbox import publish
from mercato.bus.registry import Registry
from mercato.bus.service import Bus
from mercato.kit.clock import utcnow
from tests.bus import support  # noqa: F401  (declares test.ping)


async def test_only_the_observers_behind_the_relay_run_at_start(runtime: Runtime, monkeypatch: Any) -> None:
    registry = Registry()
    handled: dict[str, list[Any]] = {"test.caught_up": [], "test.behind": []}
    caught_up_with = asyncio.Event()

    @registry.observe("test.ping", name="test.caught_up")
    async def caught_up(session, events) -> None:  # type: ignore[no-untyped-def]
        handled["test.caught_up"] += [event.data.n for event in events]

    @registry.observe("test.ping", name="test.behind")
    async def behind(session, events) -> None:  # type: ignore[no-untyped-def]
        handled["test.behind"] += [event.data.n for event in events]
        caught_up_with.set()

    bus = Bus(runtime.settings, runtime.db, registry, role="embedded")
    async with runtime.db.transaction() as session:
        await repository.start_cursors(session, list(handled), utcnow())
        await publish(session, CloudEvent(type="test.ping", subject="s", data={"n": 1}))
    await bus.relay_now()
    async with runtime.db.transaction() as session:  # one of them has read it already
        await repository.move_cursor(session, "test.caught_up", await repository.max_position(session), utcnow())

    runs: list[str] = []
    original = Observers.run

    async def counted(self: Observers, observer: Any, **kwargs: Any) -> Any:
        runs.append(observer.name)
        return await original(self, observer, **kwargs)

    monkeypatch.setattr(Observers, "run", counted)
    await bus.observers.start()
    try:
        await asyncio.wait_for(caught_up_with.wait(), 10)
        for _ in range(20):  # the other loops' turns, had they been woken
            await asyncio.sleep(0)
    finally:
        await bus.observers.stop()
    assert handled == {"test.caught_up": [], "test.behind": [1]}
    assert "test.caught_up" not in runs, runs
