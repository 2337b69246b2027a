"""A step's ``when`` filter: the relay owes a step no delivery for an event the filter refuses,
so events a step would do nothing with cost the saga's lane no turn (issue 17: a demo's
admin grants queued ahead of a buyer's order)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from mercato.app.runtime import Runtime
from mercato.bus.events import CloudEvent
from mercato.bus.outbox import publish
from mercato.bus.registry import Registry
from mercato.bus.service import Bus
from mercato.models import EventDelivery
from tests.bus import support  # noqa: F401  (declares test.ping)


def _n(data: Any) -> int:
    return int((data.model_extra or {})["n"])  # raises on a payload without a number


async def test_the_relay_owes_a_filtered_step_only_the_events_its_filter_passes(runtime: Runtime) -> None:
    registry = Registry()

    @registry.subscribe("test.ping", name="tests.big_only", when=lambda data: _n(data) > 1)
    async def big_only(session, event) -> None:  # type: ignore[no-untyped-def]
        raise AssertionError("never run here")

    @registry.subscribe("test.ping", name="tests.every")
    async def every(session, event) -> None:  # type: ignore[no-untyped-def]
        raise AssertionError("never run here")

    bus = Bus(runtime.settings, runtime.db, registry, role="embedded")
    await bus.relay_now()  # whatever the fixture published is out of the way
    published = {}
    async with runtime.db.transaction() as session:
        for n in (1, 2, "many"):
            event = CloudEvent(type="test.ping", subject=f"s{n}", data={"n": n})
            published[n] = event.id
            await publish(session, event)
    await bus.relay_now()

    async with runtime.db.read_session() as session:
        rows = (await session.execute(select(EventDelivery.subscriber, EventDelivery.event_id).where(
            EventDelivery.event_id.in_(published.values())))).all()
    owed = {(subscriber, event_id) for subscriber, event_id in rows}
    assert owed == {
        ("tests.every", published[1]), ("tests.every", published[2]), ("tests.every", published["many"]),
        ("tests.big_only", published[2]),
        # a payload the filter cannot read is delivered: the step's own failure then shows
        ("tests.big_only", published["many"]),
    }
