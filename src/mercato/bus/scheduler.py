"""Periodic sweeps (order expiry, payment polling, redelivery, clean-ups, ...).

Sweeps are data-driven and idempotent (guarded updates on ``expires_at``-style columns),
so running one twice at once is harmless. Still, each run takes a lease row in
``sweep_leases`` first: across any number of processes one runs a given sweep per
interval — a leader lock per sweep, with no extra infrastructure. The scheduler runs in
``mercato serve`` on the embedded default and in ``mercato worker`` / ``mercato
scheduler`` when scaled.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from mercato.bus import repository
from mercato.bus.context import HandlerContext
from mercato.bus.metrics import SWEEP_RUNS
from mercato.kit.clock import utcnow
from mercato.kit.db import Database, is_database_unavailable
from mercato.kit.logging import log
from mercato.kit.tasks import cancel_and_wait

SweepFunction = Callable[[HandlerContext], Awaitable[Any]]  # a sweep gets the bus's context


@dataclass(frozen=True)
class Sweep:
    name: str
    every: float
    run: SweepFunction


SWEEPS: dict[str, Sweep] = {}


def sweep(name: str, *, every: float) -> Callable[[SweepFunction], SweepFunction]:
    """Declare a periodic sweep; ``run`` receives the running :class:`~mercato.bus.service.Bus`."""

    def register(function: SweepFunction) -> SweepFunction:
        SWEEPS[name] = Sweep(name=name, every=every, run=function)
        return function

    return register


class Scheduler:
    def __init__(self, db: Database, context: HandlerContext, sweeps: list[Sweep], *,
                 holder: str | None = None) -> None:
        self.db = db
        self.context = context
        self.sweeps = sweeps
        self.holder = holder or uuid.uuid4().hex
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(s), name=f"sweep:{s.name}") for s in self.sweeps]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks, what="sweeps")
        self._tasks = []

    async def _loop(self, item: Sweep) -> None:
        while True:
            try:
                await self.run_once(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let one bad run stop the schedule
                if is_database_unavailable(exc):  # an outage: the next run retries; no trace per sweep and second
                    log.warning("sweep skipped: the database is unavailable", sweep=item.name, error=str(exc))
                else:
                    log.exception("sweep loop error", sweep=item.name)
            await asyncio.sleep(item.every)

    async def run_once(self, item: Sweep, *, force: bool = False) -> bool:
        """Run ``item`` if this process gets its lease; True when it ran."""
        now = utcnow()
        async with self.db.transaction() as session:
            lease_until = now + timedelta(seconds=max(30.0, item.every * 2))
            if not await repository.take_lease(session, item.name, self.holder, now, lease_until) and not force:
                return False
        ok, error = True, None
        try:
            await item.run(self.context)
        except Exception as exc:
            ok, error = False, f"{type(exc).__name__}: {exc}"
            log.exception("sweep failed", sweep=item.name)
        SWEEP_RUNS.labels(item.name, "ok" if ok else "error").inc()
        finished = utcnow()
        async with self.db.transaction() as session:
            await repository.finish_lease(session, item.name, self.holder, at=finished,
                                          next_at=finished + timedelta(seconds=item.every * 0.9), ok=ok, error=error)
        return True
