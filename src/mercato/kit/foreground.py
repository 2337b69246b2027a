"""Foreground work: work in flight that other work gives way to. Two kinds use it:

- the requests a store is answering (counted by the request budget, kit/budget.py; a live
  stream or a large upload, which take their time by design, are not counted): background
  work that can wait (``serve --demo``'s loader) asks :meth:`Foreground.quiet` before each
  step, and so leaves the one event loop and the one SQLite writer to a buyer's checkout and
  the saga steps its ``?wait=`` request is waiting for;
- a bus's saga deliveries in flight (bus/service.py): observers give way to them.

A wait is bounded (``at_most``), so a store that is never idle still gets its background
work done, only more slowly.
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
