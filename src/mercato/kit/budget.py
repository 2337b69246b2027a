"""The request budget (QUALITY F9): no request waits on a slow dependency longer than this.

A request that has not started its answer within ``seconds`` is cancelled (its transaction
rolls back, its idempotency key is released) and answered 503 with ``Retry-After``. Once
the answer has started the budget no longer applies, so a download or a stream is bounded
by its first byte only. A long poll's own ``wait`` (query parameter, seconds) is added to
the budget; routes that take their time by design (an upload of a large body, a live event
stream) are exempt.

The requests under a budget are also the store's foreground (kit/foreground.py): while one
is in flight, background work that can wait gives way to it.

The database has its own, shorter, statement timeout (``kit/db.py``), so a locked table
usually answers through that first; this budget covers everything else (a pool queue, a
frozen server, a dependency without a timeout of its own).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mercato.kit.errors import ServiceUnavailable, problem_response
from mercato.kit.foreground import Foreground
from mercato.kit.logging import log

RETRY_AFTER_SECONDS = 2
MAX_LONG_POLL_SECONDS = 60.0  # routes validate their own, smaller, limits


class RequestBudgetExceeded(ServiceUnavailable):
    code, title = "request_budget_exceeded", "The request took too long"

    def __init__(self, seconds: float) -> None:
        super().__init__(f"The store could not answer within {seconds:g} s (a dependency is slow); "
                         "nothing was changed, try again shortly.",
                         headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


@dataclass(frozen=True)
class Exempt:
    """Requests with this method on a path matching ``pattern`` take as long as they need."""

    method: str
    pattern: re.Pattern[str]


class RequestBudget:
    """Pure ASGI middleware that bounds each request's time to its first byte."""

    def __init__(self, app: ASGIApp, *, seconds: float, exempt: Sequence[Exempt] = (),
                 foreground: Callable[[Scope], Foreground | None] = lambda scope: None) -> None:
        self.app = app
        self.seconds = seconds
        self.exempt = tuple(exempt)
        self.foreground = foreground

    def _exempt(self, scope: Scope) -> bool:
        method, path = scope["method"], scope["path"]
        return any(rule.method == method and rule.pattern.match(path) for rule in self.exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._exempt(scope):
            await self.app(scope, receive, send)
            return
        foreground = self.foreground(scope)
        if foreground is None:
            await self._within_budget(scope, receive, send)
            return
        with foreground.serving():
            await self._within_budget(scope, receive, send)

    async def _within_budget(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.seconds <= 0:
            await self.app(scope, receive, send)
            return
        seconds = self.seconds + _long_poll_wait(scope)
        started = False
        deadline: asyncio.Timeout | None = None

        async def send_started(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start" and deadline is not None:
                started = True
                if not deadline.expired():
                    deadline.reschedule(None)  # answering now: the rest streams at its own pace
            await send(message)

        try:
            async with asyncio.timeout(seconds) as deadline:
                await self.app(scope, receive, send_started)
        except TimeoutError:
            if started or deadline is None or not deadline.expired():
                raise  # not this budget's doing
            log.warning("request over its budget", method=scope["method"], path=scope["path"], seconds=seconds)
            await problem_response(Request(scope), RequestBudgetExceeded(seconds))(scope, receive, send)


def _long_poll_wait(scope: Scope) -> float:
    """The ``wait`` a long poll asks for (0 when none, or not a number the route would take)."""
    query: bytes = scope.get("query_string", b"")
    if b"wait=" not in query:
        return 0.0
    values = parse_qs(query.decode("latin-1")).get("wait")
    try:
        wait = float(values[-1]) if values else 0.0
    except ValueError:
        return 0.0
    return min(wait, MAX_LONG_POLL_SECONDS) if wait > 0 else 0.0  # NaN and negatives: no extra time
