"""Waiting for an asynchronous effect (``?wait=``): woken by the live stream, not by polling.

Orders move on through the saga and install tasks through the agent, in whichever process
runs them; each step is an event whose ``user_id`` is the owner, so it reaches the owner's
live stream (``live.push``) in every process. A request that waits subscribes to that
stream and looks at the resource again only when an event about it arrives. Where this
process relays the events itself (the embedded store), its relay wakes the request as soon
as an event about the resource committed, before ``live.push`` gets to it (bus/watch.py).

A subscription that may have lost messages (``RESET``: a slow reader, Redis reconnecting)
falls back to looking every half second for the rest of the wait.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

from mercato.bus.watch import watching
from mercato.kit.waiting import poll_until
from mercato.live.hub import RESET, LiveHub, LiveMessage, offer

FALLBACK_POLL_SECONDS = 0.5


async def wait_until(hub: LiveHub, *, user_id: uuid.UUID, subject: str, done: Callable[[], Awaitable[bool]],
                     seconds: float) -> bool:
    """Wait up to ``seconds`` for ``done()`` to hold, asking it at the start and whenever an
    event about ``subject`` reaches ``user_id``'s stream. True when it held."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    async with hub.subscribe(user_id) as queue:
        relayed_here = LiveMessage(sequence=-1, type="relayed", payload={"subject": subject})
        with watching(subject, lambda: offer(queue, relayed_here)):
            return await _wait(queue, subject, done, deadline)


async def _wait(queue: asyncio.Queue[LiveMessage], subject: str, done: Callable[[], Awaitable[bool]],
                deadline: float) -> bool:
    loop = asyncio.get_running_loop()
    # Subscribed first, then asked: an event in between is queued, never missed.
    if await done():
        return True
    while (left := deadline - loop.time()) > 0:
        try:
            message = await asyncio.wait_for(queue.get(), timeout=left)
        except TimeoutError:
            return False
        if message is RESET:
            break
        if message.payload.get("subject") == subject and await done():
            return True

    async def held() -> bool | None:
        return True if await done() else None

    return bool(await poll_until(held, deadline=deadline, interval=FALLBACK_POLL_SECONDS))
