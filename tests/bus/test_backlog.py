"""What the bus owes, as /metrics and the admin health page show it: an observer owes only
the relayed events of the types it observes."""

from __future__ import annotations

from mercato.app.runtime import Runtime
from mercato.bus import repository
from mercato.bus.events import CloudEvent
from mercato.bus.outbox import publish
from mercato.bus.registry import Registry
from mercato.bus.service import Bus, backlog
from mercato.kit.clock import utcnow
from tests.bus import support  # noqa: F401  (declares test.ping and test.poison)


async def test_an_observer_owes_only_the_events_of_its_types_beyond_its_cursor(runtime: Runtime) -> None:
    registry = Registry()

    @registry.observe("test.ping", name="test.pings")
    async def pings(session, events) -> None:  # type: ignore[no-untyped-def]
        raise AssertionError("never run here")

    @registry.observe("*", name="test.everything")
    async def everything(session, events) -> None:  # type: ignore[no-untyped-def]
        raise AssertionError("never run here")

    bus = Bus(runtime.settings, runtime.db, registry, role="embedded")
    await bus.relay_now()  # whatever the fixture published is behind the cursors
    async with runtime.db.transaction() as session:
        await repository.start_cursors(session, ["test.pings", "test.everything"], utcnow())
        await publish(session, CloudEvent(type="test.ping", subject="s", data={"n": 1}))
        for n in range(3):
            await publish(session, CloudEvent(type="test.poison", subject="s", data={"n": n}))
    async with runtime.db.read_session() as session:
        before = await backlog(session, registry)
    assert before.outbox == 4 and before.pending == {"test.pings": 0, "test.everything": 0}
    await bus.relay_now()
    async with runtime.db.read_session() as session:
        after = await backlog(session, registry)
    assert after.outbox == 0
    assert after.pending == {"test.pings": 1, "test.everything": 4}
