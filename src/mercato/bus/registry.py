"""Subscribers: who reacts to which event types, and in which lane.

Each domain declares its reactions in its ``handlers.py``. There are two kinds:

- **Steps** move the store's state on (the order saga, refunds, installs): each event is
  one delivery in its own transaction, in order per subject, retried with backoff and
  finally a dead letter::

      @subscribe("order.paid", name="library.grant_on_paid")
      async def grant_on_paid(session: AsyncSession, event: CloudEvent) -> None: ...

- **Observers** only record what happened elsewhere (history, statistics, notifications,
  webhook fan-out, live push, cache eviction). They take events in batches, following the
  relay's order with a cursor: one transaction records the effects of many events and
  moves the cursor past them, so a batch counts exactly once. Observers run in a lane of
  their own and can never delay a step::

      @observe("order.completed", name="stats.count_revenue")
      async def count_revenue(session: AsyncSession, events: list[CloudEvent]) -> None: ...

A step's handler runs inside the delivery's transaction; the bus records the event as
processed for that subscriber in the same transaction, so a repeated delivery is a no-op.
``"*"`` subscribes to every event type.

A step whose effect is outside the database (sending an e-mail) subscribes with
``outside_transaction=True``: it runs with a read session before the delivery's write
transaction, so a slow outside party never holds the (on SQLite, single) writer, and in
the ``slow`` lane, so it never takes a saga step's turn. Its effect is at least once: a
crash after it and before the commit runs it again.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus.events import CloudEvent, EventData, load_event_types

Handler = Callable[[AsyncSession, CloudEvent], Awaitable[None]]
BatchHandler = Callable[[AsyncSession, list[CloudEvent]], Awaitable[None]]
ALL_EVENTS = "*"
Lane = Literal["saga", "slow", "observer"]

# Domains whose handlers.py the store loads at start.
HANDLER_MODULES = ("listing_detail", "moderation", "notifications", "webhooks", "live", "policies", "wallet",
                   "refunds", "earnings", "payments", "orders", "installs", "history", "sync", "stats", "market")


@dataclass(frozen=True)
class Subscriber:
    name: str
    event_types: frozenset[str]
    handler: Callable[[AsyncSession, Any], Awaitable[None]]
    outside_transaction: bool = False
    # Observers take a list of events (``BatchHandler``) and follow a cursor instead of
    # having one delivery row per event.
    batch: bool = False
    # A step's filter on the event's payload: the relay owes it no delivery for an event it is
    # False for (the step would do nothing with it), so such events cost the saga's lane no turn.
    when: Callable[[Any], bool] | None = None

    def concerns(self, event: CloudEvent) -> bool:
        """Whether this step gets a delivery of ``event`` (of a type it wants). A payload the
        filter cannot read is delivered: the step's own failure then shows (retries, dead letter)."""
        if self.when is None:
            return True
        try:
            return bool(self.when(event.data))
        except Exception:
            return True

    def wants(self, event_type: str) -> bool:
        return ALL_EVENTS in self.event_types or event_type in self.event_types

    @property
    def lane(self) -> Lane:
        if self.batch:
            return "observer"
        return "slow" if self.outside_transaction else "saga"

    async def handle_one(self, session: AsyncSession, event: CloudEvent) -> None:
        """Run the handler for one event, whatever its kind (a replayed observer dead letter
        is delivered on its own)."""
        await self.handler(session, [event] if self.batch else event)


EventKind = str | type[EventData]


def _names(kinds: tuple[EventKind, ...]) -> frozenset[str]:
    names = []
    for kind in kinds:
        if isinstance(kind, str):
            names.append(kind)
        elif not kind.event_type:
            raise ValueError(f"{kind.__name__} is not a declared event type (@event_type)")
        else:
            names.append(kind.event_type)
    return frozenset(names)


def for_each(handler: Handler) -> BatchHandler:
    """A batch handler that runs ``handler`` on each event of the batch in turn."""
    async def run_each(session: AsyncSession, events: list[CloudEvent]) -> None:
        for event in events:
            await handler(session, event)

    run_each.__qualname__ = run_each.__name__ = handler.__name__
    run_each.__module__ = handler.__module__  # where the reaction is written (logs, docs/modules.md)
    return run_each


@dataclass
class Registry:
    subscribers: dict[str, Subscriber] = field(default_factory=dict)

    def subscribe(self, *event_types: EventKind, name: str, outside_transaction: bool = False,
                  when: Callable[[Any], bool] | None = None) -> Callable[[Any], Any]:
        """Register a step for event types, named by their payload models (or as strings).
        ``when``: a filter on the parsed payload; events it refuses get no delivery. The
        handler still gets only events it passed, but keeps its own checks: a delivery owed
        before a filter changed is still delivered."""
        def register(handler: Any) -> Any:
            self.add(Subscriber(name=name, event_types=_names(event_types), handler=handler,
                                outside_transaction=outside_transaction, when=when))
            return handler

        return register

    def observe(self, *event_types: EventKind, name: str, each: bool = False) -> Callable[[Any], Any]:
        """Register an observer. With ``each=True`` the decorated function takes one event
        and the batch runs it on each event in turn (still one transaction per batch)."""
        def register(handler: Any) -> Any:
            self.add(Subscriber(name=name, event_types=_names(event_types),
                                handler=for_each(handler) if each else handler, batch=True))
            return handler

        return register

    def add(self, subscriber: Subscriber) -> None:
        if subscriber.name in self.subscribers and self.subscribers[subscriber.name].handler is not subscriber.handler:
            raise ValueError(f"two subscribers are named {subscriber.name!r}")
        self.subscribers[subscriber.name] = subscriber

    def for_type(self, event_type: str) -> list[Subscriber]:
        return [s for s in self.subscribers.values() if s.wants(event_type)]

    def steps_for(self, event_type: str) -> list[Subscriber]:
        """The subscribers that get one delivery row per event of this type."""
        return [s for s in self.subscribers.values() if not s.batch and s.wants(event_type)]

    @property
    def observers(self) -> list[Subscriber]:
        return [s for s in self.subscribers.values() if s.batch]

    def get(self, name: str) -> Subscriber | None:
        return self.subscribers.get(name)


REGISTRY = Registry()
subscribe = REGISTRY.subscribe
observe = REGISTRY.observe


def load_handlers() -> Registry:
    """Import every domain's handlers.py so its subscribers register."""
    load_event_types()
    for module in HANDLER_MODULES:
        try:
            importlib.import_module(f"mercato.{module}.handlers")
        except ModuleNotFoundError as exc:
            if exc.name != f"mercato.{module}" and exc.name != f"mercato.{module}.handlers":
                raise
    return REGISTRY
