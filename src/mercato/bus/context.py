"""What a handler or a sweep may use of the bus running it: :class:`HandlerContext` (the
settings, the database, the live hub and the store's runtime). ``current_bus()`` returns it
inside a delivery; a sweep gets it as its argument. Set around every handler call.
``store_runtime()`` is the runtime, for a handler or sweep that needs one of the store's ports
(the payment gateway, say): a bare bus (tests of the bus alone) has none."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # types only: the live hub's module sits above the bus
    from mercato.config import Settings
    from mercato.kit.db import Database
    from mercato.live.hub import LiveHub
    from mercato.platform.runtime import Runtime


class HandlerContext(Protocol):
    """The part of :class:`mercato.bus.service.Bus` that handlers and sweeps see."""

    settings: Settings
    db: Database
    live: LiveHub | None
    # The store's long-lived objects (cache, artifact store, keys, mailer); None in a bare bus.
    runtime: Runtime | None


_current: ContextVar[HandlerContext | None] = ContextVar("mercato_current_bus", default=None)


def current_bus() -> HandlerContext:
    bus = _current.get()
    if bus is None:
        raise RuntimeError("no bus is running this handler")
    return bus


def store_runtime() -> Runtime:
    """The runtime of the bus running this handler; RuntimeError in a bare bus."""
    runtime = current_bus().runtime
    if runtime is None:
        raise RuntimeError("this handler needs the store's runtime: the bus running it was built without one")
    return runtime


def set_current_bus(bus: HandlerContext | None) -> Any:
    return _current.set(bus)


def reset_current_bus(token: Any) -> None:
    _current.reset(token)
