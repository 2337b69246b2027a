"""Subjects that code in this process waits on, woken by this process's relay.

A request that waits for an order to settle (``?wait=``) learns of each step through the
owner's live stream, which the ``live.push`` observer feeds: in every process, but only once
that observer reaches the event, behind whatever else the store published meanwhile (a demo
store's catalog: a quarter of a second). Where the relay runs in the same process (the
embedded store), it tells the waiters of the subjects it has just relayed, right after the
events committed; the live stream remains the way for every other process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Iterator

Wake = Callable[[], None]

# subject -> the wake-ups of its waiters, each with the event loop it runs in
_waiters: dict[str, dict[int, tuple[asyncio.AbstractEventLoop, Wake]]] = {}


@contextlib.contextmanager
def watching(subject: str, wake: Wake) -> Iterator[None]:
    """Call ``wake`` (in the caller's event loop) whenever this process relays an event about
    ``subject``, until the block ends."""
    loop = asyncio.get_running_loop()
    key = id(wake)
    _waiters.setdefault(subject, {})[key] = (loop, wake)
    try:
        yield
    finally:
        waiting = _waiters.get(subject)
        if waiting is not None:
            waiting.pop(key, None)
            if not waiting:
                del _waiters[subject]


def relayed(subjects: Iterable[str]) -> None:
    """The relay of this process handed out events about ``subjects``."""
    if not _waiters:
        return
    try:
        current = asyncio.get_running_loop()
    except RuntimeError:
        current = None
    for subject in subjects:
        for loop, wake in list(_waiters.get(subject, {}).values()):
            if loop is current:
                wake()
            elif not loop.is_closed():
                loop.call_soon_threadsafe(wake)
