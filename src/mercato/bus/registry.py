"""Subscribers: who reacts to which event types.

Each domain declares its reactions in its ``handlers.py``::

    @subscribe("order.paid", name="library.grant_on_paid")
    async def grant_on_paid(session: AsyncSession, event: CloudEvent) -> None: ...

A handler runs inside the delivery's transaction; the bus records the event as processed
for that subscriber in the same transaction, so a repeated delivery is a no-op. ``"*"``
subscribes to every event type.

A handler whose effect is outside the database (sending an e-mail) subscribes with
``outside_transaction=True``: it runs with a read session before the delivery's write
transaction, so a slow outside party never holds the (on SQLite, single) writer. Its
effect is at least once: a crash after it and before the commit runs it again.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus.events import CloudEvent

Handler = Callable[[AsyncSession, CloudEvent], Awaitable[None]]
ALL_EVENTS = "*"

# Domains whose handlers.py the store loads at start.
HANDLER_MODULES = ("catalog", "review", "notifications", "webhooks", "live", "policies", "wallet", "refunds", "earnings",
                   "payments", "orders", "library", "installs", "history", "sync", "stats",
                   "market")


@dataclass(frozen=True)
class Subscriber:
    name: str
    event_types: frozenset[str]
    handler: Handler
    outside_transaction: bool = False

    def wants(self, event_type: str) -> bool:
        return ALL_EVENTS in self.event_types or event_type in self.event_types


@dataclass
class Registry:
    subscribers: dict[str, Subscriber] = field(default_factory=dict)

    def subscribe(self, *event_types: str, name: str, outside_transaction: bool = False
                  ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.add(Subscriber(name=name, event_types=frozenset(event_types), handler=handler,
                                outside_transaction=outside_transaction))
            return handler

        return register

    def add(self, subscriber: Subscriber) -> None:
        if subscriber.name in self.subscribers and self.subscribers[subscriber.name].handler is not subscriber.handler:
            raise ValueError(f"two subscribers are named {subscriber.name!r}")
        self.subscribers[subscriber.name] = subscriber

    def for_type(self, event_type: str) -> list[Subscriber]:
        return [s for s in self.subscribers.values() if s.wants(event_type)]

    def get(self, name: str) -> Subscriber | None:
        return self.subscribers.get(name)


REGISTRY = Registry()
subscribe = REGISTRY.subscribe


def load_handlers() -> Registry:
    """Import every domain's handlers.py so its subscribers register."""
    for module in HANDLER_MODULES:
        try:
            importlib.import_module(f"mercato.{module}.handlers")
        except ModuleNotFoundError as exc:
            if exc.name != f"mercato.{module}" and exc.name != f"mercato.{module}.handlers":
                raise
    return REGISTRY
