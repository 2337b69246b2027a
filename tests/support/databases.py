"""Per-test PostgreSQL databases without waiting for PostgreSQL.

Each test gets a database of its own, cloned from the migrated template. Cloning takes
~0.3 s and dropping 0.7–2 s (``DROP DATABASE`` waits for a checkpoint), which made the
PostgreSQL pass of the suite spend most of its time in fixtures. ``Clones`` does both on a
thread of its own beside the tests: it keeps a couple of clones made ahead, and drops used
ones in the background; ``close()`` (end of the session) waits until every one it made is
gone, so nothing is left behind.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import uuid
from collections.abc import Awaitable, Callable

AHEAD = 2  # clones kept ready for the next tests of this worker


class Clones:
    def __init__(self, template: str, admin: Callable[[str], Awaitable[None]]) -> None:
        self.template = template
        self._admin = admin
        self._ready: queue.Queue[str | BaseException] = queue.Queue()
        self._work: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self.failed_drops: list[str] = []
        self._thread = threading.Thread(target=self._run, name="test-database-clones", daemon=True)
        self._thread.start()
        for _ in range(AHEAD):
            self._work.put(("create", f"mercato_t_{uuid.uuid4().hex[:12]}"))

    def take(self) -> str:
        """A fresh clone of the template (made ahead; another is ordered in its place)."""
        self._work.put(("create", f"mercato_t_{uuid.uuid4().hex[:12]}"))
        made = self._ready.get(timeout=120)
        if isinstance(made, BaseException):
            raise made
        return made

    def give_back(self, name: str) -> None:
        """Drop ``name`` in the background (the test is done with it)."""
        self._work.put(("drop", name))

    def close(self) -> None:
        """Drop the clones made ahead and every one given back; wait until done."""
        self._work.put(None)
        self._thread.join(timeout=600)
        while not self._ready.empty():
            leftover = self._ready.get_nowait()
            if isinstance(leftover, str):
                asyncio.run(self._admin(f'DROP DATABASE IF EXISTS "{leftover}" WITH (FORCE)'))
        assert not self._thread.is_alive(), "test databases were still being dropped after 10 minutes"
        assert not self.failed_drops, f"test databases could not be dropped: {self.failed_drops}"

    def _run(self) -> None:
        # In order: a clone is ordered only when one is taken, so a drop never starves the tests.
        while (job := self._work.get()) is not None:
            action, name = job
            if action == "create":
                try:
                    asyncio.run(self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"'))
                except BaseException as error:  # handed to the test that waits for this clone
                    self._ready.put(error)
                else:
                    self._ready.put(name)
            else:
                try:
                    asyncio.run(self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                except Exception as error:  # reported by close(): a database left behind fails the run
                    self.failed_drops.append(f"{name}: {error}")
