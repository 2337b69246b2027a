"""Stopping background asyncio tasks within a bound.

A task that is cancelled may still take a while to unwind (a rollback on the database) or,
inside a library that swallows ``CancelledError``, finish its work first. Shutdown waits
for them a bounded time and then goes on: whatever a task left undone is owed in the
database (a pending delivery, a due sweep) and is picked up at the next start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from mercato.kit.logging import log

STOP_TIMEOUT = 3.0  # `mercato serve` and `worker` stop within 5 s (QUALITY PERF-7)


async def cancel_and_wait(tasks: Iterable[asyncio.Task[object]], *, what: str,
                          timeout: float = STOP_TIMEOUT) -> None:
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    if not pending:
        return
    _, still_running = await asyncio.wait(pending, timeout=timeout)
    if still_running:
        log.warning("shutdown: tasks still running after the stop timeout; leaving them", what=what,
                    count=len(still_running), timeout=timeout)
