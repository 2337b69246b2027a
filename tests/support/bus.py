"""Waiting for what the bus does in the background, on the bus's own signal (never a sleep).

The in-process bus signals every finished piece of work (``mercato.bus.service``); these
helpers look again each time. A bus in another process (a worker subprocess) signals
nothing here, so they also look every half second.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from mercato.bus.registry import REGISTRY
from mercato.bus.service import progress_signal, wait_idle
from mercato.runtime import Runtime

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
