"""CloudEvents 1.0, and how each module declares the events it emits.

Every event type is declared once, by the module that emits it, in its own ``events.py``:
a Pydantic model of the event's ``data``, registered with :func:`event_type`::

    @event_type("order.paid", source="orders")
    class OrderPaid(OrderEvent):
        \"\"\"The total is in escrow; digital orders are entitled next.\"\"\"
        physical: bool
        lines: list[OrderLineData]

A producer publishes the model (``publish(session, CloudEvent.of(OrderPaid(...), subject=...))``);
a subscriber names the model and receives the parsed payload (``event.data.order_id`` is a
UUID): nobody parses dictionaries by hand. The catalogue (:data:`EVENT_TYPES`) is what the
API documentation lists (OpenAPI ``webhooks``: every type with its payload schema) and what
``/admin/events`` and webhooks carry.

A payload is validated when it is published (an unknown field, a missing one or a wrong
type is a bug in the producer, refused at once) and parsed lazily when delivered: a
subscriber that only forwards events (webhooks, the live stream) never parses them.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, create_model

from mercato.kit.clock import utcnow

SPEC_VERSION = "1.0"


class EventData(BaseModel):
    """The ``data`` of one event type. Fields left out when publishing are left out of the
    stored JSON too (``exclude_unset``); a field published as None is kept as null."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    event_type: ClassVar[str] = ""


class OpenEventData(EventData):
    """Free-form data, for event types declared without a model (tests, plugins)."""

    model_config = ConfigDict(frozen=True, extra="allow")


D = TypeVar("D", bound=EventData)
M = TypeVar("M", bound=type[EventData])


@dataclass(frozen=True)
class EventType:
    name: str
    source: str  # the emitting module: the CloudEvents source is ``mercato/<source>``
    model: type[EventData]

    @property
    def description(self) -> str:
        return " ".join((self.model.__doc__ or "").split())


# Every declared event type, filled by the modules' ``events.py`` as they are imported.
EVENT_TYPES: dict[str, EventType] = {}
# Domains that declare event types in their events.py.
EVENT_MODULES = ("accounts", "access", "publishers", "catalog", "releases", "moderation", "ratings", "library",
                 "notifications", "policies", "orders", "wallet", "payments", "refunds", "earnings", "installs",
                 "webhooks")


def load_event_types() -> None:
    """Import every domain's events.py so the catalogue of event types is complete."""
    for module in EVENT_MODULES:
        importlib.import_module(f"mercato.{module}.events")


class UnknownEventType(ValueError):
    pass


def event_type(name: str, *, source: str) -> Callable[[M], M]:
    """Declare ``name`` with the decorated model as its ``data``."""

    def register(model: M) -> M:
        held = EVENT_TYPES.get(name)
        if held is not None and held.model is not model:
            raise ValueError(f"event type {name!r} is declared twice")
        model.event_type = name
        EVENT_TYPES[name] = EventType(name, source, model)
        return model

    return register


def declare_event_type(name: str, *, source: str, data: str = "") -> None:
    """Add an event type whose data is free-form (tests and plugins)."""
    if name not in EVENT_TYPES:
        model = create_model(f"Data_{name.replace('.', '_')}", __base__=OpenEventData, __doc__=data or None)
        event_type(name, source=source)(model)


def spec(name: str) -> EventType:
    found = EVENT_TYPES.get(name)
    if found is None:
        # A process that publishes before anything imported the declaring module (a CLI
        # command, a sweep): the catalogue is completed once, then the name must be in it.
        load_event_types()
        found = EVENT_TYPES.get(name)
    if found is None:
        raise UnknownEventType(f"event type {name!r} is not declared (see mercato.bus.events)")
    return found


class CloudEvent(Generic[D]):
    """One event: the CloudEvents context attributes and its data, typed by its declaration."""

    __slots__ = ("type", "subject", "id", "time", "sequence", "_data", "_json")

    def __init__(self, type: str, subject: str, data: D | dict[str, Any], id: uuid.UUID | None = None,
                 time: datetime | None = None, sequence: int | None = None) -> None:
        declared = spec(type)
        self.type = type
        self.subject = subject
        self.id = id or uuid.uuid4()
        self.time = time or utcnow()
        self.sequence = sequence
        if isinstance(data, EventData):
            if not isinstance(data, declared.model):
                raise TypeError(f"{type!r} carries {declared.model.__name__}, not {data.__class__.__name__}")
            self._data: D | None = data  # type: ignore[assignment]
            self._json: dict[str, Any] | None = None
        else:
            self._data, self._json = None, data

    @classmethod
    def of(cls, data: D, *, subject: str) -> CloudEvent[D]:
        return cls(data.event_type, subject, data)

    @property
    def data(self) -> D:
        """The parsed payload."""
        if self._data is None:
            self._data = spec(self.type).model.model_validate(self._json)  # type: ignore[assignment]
        return self._data  # type: ignore[return-value]

    @property
    def json_data(self) -> dict[str, Any]:
        """The payload as JSON (what the outbox stores and webhooks send)."""
        if self._json is None:
            self._json = self.data.model_dump(mode="json", exclude_unset=True)
        return self._json

    def validated(self) -> CloudEvent[D]:
        """Check the payload against its declaration and keep its canonical JSON (publish)."""
        self._data = spec(self.type).model.model_validate(self._json) if self._data is None else self._data
        self._json = self._data.model_dump(mode="json", exclude_unset=True)
        return self

    @property
    def source(self) -> str:
        return f"mercato/{spec(self.type).source}"

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "specversion": SPEC_VERSION, "id": str(self.id), "source": self.source, "type": self.type,
            "subject": self.subject, "time": self.time.isoformat().replace("+00:00", "Z"),
            "datacontenttype": "application/json", "data": self.json_data,
        }
        if self.sequence is not None:
            body["sequence"] = str(self.sequence)
        return body

    def __repr__(self) -> str:
        return f"CloudEvent({self.type!r}, subject={self.subject!r}, id={self.id})"
