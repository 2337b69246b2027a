"""Events and dead letters for the tests of the bus's admin endpoints and the console's
dead-letter pages: the ``test.admin`` event types, a ``settings`` fixture with one attempt
per delivery (a failing subscriber's event is a dead letter at once), and ``poison``, a
subscriber on the running bus that fails until it is fixed. A test module that wants the
fixtures imports them (``one_attempt_settings``, ``poison_subscriber``: named apart from the
fixtures they provide, so a test's ``poison`` argument shadows no import)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.app.runtime import Runtime
from mercato.bus import repository
from mercato.bus.events import CloudEvent, declare_event_type
from mercato.bus.outbox import publish
from mercato.bus.registry import Subscriber
from mercato.config import Settings
from mercato.models import EventDelivery

declare_event_type("test.admin", source="tests", data="{n}")
declare_event_type("test.admin_poison", source="tests", data="{n}")

POISON_SUBSCRIBER = "tests.admin_poison"


@pytest.fixture(name="settings")
def one_attempt_settings(settings: Settings) -> Settings:
    """One attempt per delivery (a failure is dead at once) and a brisk redelivery sweep."""
    return settings.model_copy(update={"bus_max_attempts": 1, "bus_sweep_interval_seconds": 0.1,
                                       "bus_retry_base_seconds": 0.05})


async def publish_events(runtime: Runtime, subject: str, count: int, *, event_type: str = "test.admin",
                         start: datetime | None = None, step: timedelta = timedelta(minutes=1),
                         ) -> list[CloudEvent]:
    events = []
    async with runtime.db.transaction() as session:
        for n in range(count):
            extra: dict[str, Any] = {"time": start + n * step} if start is not None else {}
            event = CloudEvent(type=event_type, subject=subject, data={"n": n}, **extra)
            await publish(session, event)
            events.append(event)
    return events


class Poison:
    """A subscriber on the running bus that fails until it is fixed. A test module that wants the
fixtures imports them (``one_attempt_settings``, ``poison_subscriber``: named apart from the
fixtures they provide, so a test's ``poison`` argument shadows no import)."""

    def __init__(self) -> None:
        self.fixed = False
        self.handled: list[uuid.UUID] = []

    async def __call__(self, session: AsyncSession, event: CloudEvent) -> None:
        if not self.fixed:
            raise RuntimeError(f"poison event #{event.json_data.get('n')}")
        self.handled.append(event.id)


@pytest.fixture(name="poison")
async def poison_subscriber(app) -> AsyncIterator[Poison]:  # type: ignore[no-untyped-def]
    handler = Poison()
    registry = app.state.bus.registry
    registry.add(Subscriber(name=POISON_SUBSCRIBER, event_types=frozenset({"test.admin_poison"}), handler=handler))
    try:
        yield handler
    finally:
        registry.subscribers.pop(POISON_SUBSCRIBER, None)


async def delivery_of(runtime: Runtime, event_id: uuid.UUID,
                      subscriber: str = POISON_SUBSCRIBER) -> EventDelivery | None:
    async with runtime.db.read_session() as session:
        return await repository.delivery(session, subscriber, event_id)


async def wait_for_state(runtime: Runtime, event_id: uuid.UUID, state: str, *, timeout: float = 10) -> EventDelivery:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        delivery = await delivery_of(runtime, event_id)
        if delivery is not None and delivery.state == state:
            return delivery
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"delivery is {delivery and delivery.state}, not {state}, after {timeout}s")
        await asyncio.sleep(0.02)


async def dead_letters(runtime: Runtime, poison: Poison, count: int) -> list[EventDelivery]:
    """``count`` dead letters, one subject each (a subject's later events wait for its earlier ones)."""
    events = []
    for _ in range(count):
        events += await publish_events(runtime, f"poisoned-{uuid.uuid4().hex[:8]}", 1, event_type="test.admin_poison")
    return [await wait_for_state(runtime, event.id, "dead") for event in events]
