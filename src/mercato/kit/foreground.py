"""The store's foreground: the requests it is answering now. Background work that can wait
(``serve --demo``'s loader) asks :meth:`Foreground.quiet` before each step and so gives the
one event loop and the one SQLite writer to a buyer's checkout and the saga steps its
``?wait=`` request is waiting for, instead of interleaving with them.

Requests that take their time by design (a live stream, a large upload) are not counted:
the request budget's exempt routes (kit/budget.py). A wait is bounded (``at_most``), so a
store that is never idle still gets its background work done, only more slowly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager


class Foreground:
    def __init__(self) -> None:
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @contextmanager
    def serving(self) -> Iterator[None]:
        """Counts one request while it is answered."""
        self._in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def quiet(self, *, at_most: float = 2.0) -> bool:
        """Returns once no request is in flight (True), or after ``at_most`` seconds (False)."""
        deadline = time.monotonic() + at_most
        while self._in_flight:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._idle.wait(), remaining)
            except TimeoutError:
                return False
        return True
