"""The bus running the current delivery, for handlers that need more than their session
(the live hub, settings). Set around every handler call."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

_current: ContextVar[Any] = ContextVar("mercato_current_bus", default=None)


def current_bus() -> Any:
    bus = _current.get()
    if bus is None:
        raise RuntimeError("no bus is running this handler")
    return bus


def set_current_bus(bus: Any) -> Any:
    return _current.set(bus)


def reset_current_bus(token: Any) -> None:
    _current.reset(token)
