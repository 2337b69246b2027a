"""Waiting for something to happen by asking again: one loop for every wait-and-poll in the code."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def poll_until(check: Callable[[], Awaitable[T | None]], *, deadline: float, interval: float,
                     max_interval: float | None = None, wake: asyncio.Event | None = None) -> T | None:
    """Ask ``check()`` until it answers something other than None, and return that answer;
    None once ``deadline`` (the running loop's ``time()``) has passed without one.

    ``check()`` is asked at once, then after each pause and once more at the deadline. A
    pause lasts ``interval`` seconds (doubling after each one up to ``max_interval``, when
    given), never past the deadline, and ends early when ``wake`` is set. A caller whose
    event says "something changed" clears it in ``check()`` before looking; one whose event
    says "stop" makes ``check()`` answer once it is set.
    """
    loop = asyncio.get_running_loop()
    pause = interval
    while True:
        answer = await check()
        if answer is not None:
            return answer
        left = deadline - loop.time()
        if left <= 0:
            return None
        if wake is None:
            await asyncio.sleep(min(pause, left))
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), min(pause, left))
        if max_interval is not None:
            pause = min(pause * 2, max_interval)
