"""What the audit log and the logs need to know about the current request."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestInfo:
    request_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None


# RequestInfo is a frozen dataclass, so the shared default cannot be mutated.
_current: ContextVar[RequestInfo] = ContextVar("mercato_request_info", default=RequestInfo())  # noqa: B039


def current_request() -> RequestInfo:
    return _current.get()


def set_current_request(info: RequestInfo) -> None:
    _current.set(info)
