"""Waiting for what the bus does in the background, on the bus's own signal (never a sleep).

The in-process bus signals every finished piece of work (``mercato.bus.service``); these
helpers look again each time. A bus in another process (a worker subprocess) signals
nothing here, so they also look every half second.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from mercato.app.runtime import Runtime
from mercato.bus import repository
from mercato.bus.registry import REGISTRY
from mercato.bus.service import progress_signal, wait_idle

T = TypeVar("T")


async def settled(runtime: Runtime, timeout: float = 30.0) -> None:
    """Until the store's bus owes nothing (every event relayed, delivered and observed)."""
    try:
        await wait_idle(runtime.db, REGISTRY, timeout=timeout)
    except TimeoutError as exc:
        raise AssertionError("the bus did not settle") from exc


async def eventually(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], *, timeout: float = 15.0,
                     fail: bool = True) -> T:
    """``probe()`` again after each piece of bus work until ``done`` holds. At the timeout:
    an AssertionError (``fail``), or the last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    signal = progress_signal()
    while True:
        signal.clear()
        value = await probe()
        if done(value):
            return value
        left = deadline - loop.time()
        if left <= 0:
            if fail:
                raise AssertionError(f"still not there after {timeout}s: {value!r}")
            return value
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(signal.wait(), timeout=min(left, 0.5))


async def handled(runtime: Runtime, subscriber: str, event_id: uuid.UUID, *, timeout: float = 15.0) -> None:
    """Until ``subscriber`` has handled the event: a step's delivery is done, or an
    observer's cursor has passed the event's position."""

    async def probe() -> bool:
        async with runtime.db.read_session() as session:
            found = REGISTRY.get(subscriber)
            assert found is not None, f"no subscriber is named {subscriber!r}"
            if found.batch:  # an observer
                row = await repository.event_row(session, event_id)
                cursor = (await repository.cursors(session)).get(subscriber)
                return row is not None and row.position is not None and cursor is not None and cursor >= row.position
            delivery = await repository.delivery(session, subscriber, event_id)
            return delivery is not None and delivery.state == "done"

    await eventually(probe, bool, timeout=timeout)
