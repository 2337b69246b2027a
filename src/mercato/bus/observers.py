"""Observers: subscribers that take events in batches, following the relay with a cursor.

An observer run is one transaction:

1. lock the observer's cursor row (another process running the same observer skips);
2. read the relayed events of the observer's types after the cursor (up to ``batch``);
3. run the handler on all of them at once;
4. move the cursor past them; commit. Effects and cursor commit together: a crash
   anywhere leaves the events to be read again, never counted twice.

When the batch fails, its transaction rolls back whole and the events are taken one at a
time from the cursor's head, each in a savepoint of the run's transaction: the failing one
is retried with backoff (its attempts are kept on the cursor row), and after the last
attempt it becomes a dead letter (a delivery row in state ``dead``, replayed on its own
like a step's) and the cursor moves past it.

Observers never delay a step: in this process a run waits (briefly) while saga deliveries
are in flight, and a run holds the writer for one bounded batch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from mercato.bus import repository
from mercato.bus.context import HandlerContext, reset_current_bus, set_current_bus
from mercato.bus.delivery import RetryPolicy, describe, event_from_row
from mercato.bus.metrics import DELIVERIES, DELIVERY_LAG
from mercato.bus.registry import ALL_EVENTS, Registry, Subscriber
from mercato.kit.clock import utcnow
from mercato.kit.db import Database, is_database_unavailable
from mercato.kit.foreground import Foreground
from mercato.kit.logging import log
from mercato.kit.tasks import cancel_and_wait

BATCH = 200
# How long an observer run gives way to saga deliveries in flight in this process.
YIELD_TO_SAGA_SECONDS = 0.05


class _BatchFailed(Exception):
    """A batch's handler failed: raised out of its transaction, so all of it rolls back."""

    def __init__(self, error: Exception, events: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.events = events


def types_of(subscriber: Subscriber) -> frozenset[str] | None:
    return None if ALL_EVENTS in subscriber.event_types else subscriber.event_types


class Observers:
    """Runs every observer of the registry in this process: each when the relay woke it,
    and every ``poll`` seconds as a fallback (events relayed by another process)."""

    def __init__(self, db: Database, registry: Registry, retry: RetryPolicy, *, context: HandlerContext,
                 traffic: Foreground, poll: float, batch: int = BATCH,
                 on_progress: Callable[[], None] | None = None) -> None:
        self.db = db
        self.registry = registry
        self.retry = retry
        self.context = context
        self.traffic = traffic
        self.poll = poll
        self.batch = batch
        self.on_progress = on_progress
        self._wakeups: dict[str, asyncio.Event] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        observers = self.registry.observers
        names = [o.name for o in observers]
        async with self.db.transaction() as session:
            await repository.start_cursors(session, names, utcnow())
            behind = await repository.cursors_behind(session, names)
        for observer in observers:
            self._wakeups[observer.name] = asyncio.Event()
            if observer.name in behind:  # catch up at once; the others wait for the relay (or the poll)
                self._wakeups[observer.name].set()
            self._tasks.append(asyncio.create_task(self._loop(observer), name=f"bus:observe:{observer.name}"))

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks, what="bus observers")
        self._tasks = []

    def wake(self, names: set[str] | None = None) -> None:
        for name, signal in self._wakeups.items():
            if names is None or name in names:
                signal.set()

    async def _loop(self, observer: Subscriber) -> None:
        signal = self._wakeups[observer.name]
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(signal.wait(), timeout=self.poll)
            signal.clear()
            try:
                one_at_a_time = False
                while True:
                    await self.traffic.quiet(at_most=YIELD_TO_SAGA_SECONDS)
                    outcome, retry_in = await self.run(observer, one_at_a_time=one_at_a_time)
                    # A batch that failed is taken again one event at a time, at once.
                    one_at_a_time = outcome == "split"
                    if self.on_progress is not None and outcome in ("done", "caught_up", "dead"):
                        self.on_progress()
                    if outcome in ("idle", "busy", "caught_up"):
                        # Caught up: the batch read everything relayed when it began; a later
                        # relay pass sets the signal again (cleared before this run).
                        break
                    if outcome == "retry":
                        self._wake_later(observer.name, retry_in)
                        break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database failing: try again at the next wake or poll
                if is_database_unavailable(exc):
                    log.warning("bus: observer waits for the database", subscriber=observer.name, error=str(exc))
                else:
                    log.exception("bus: observer run failed", subscriber=observer.name)

    def _wake_later(self, name: str, delay: float) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(max(0.0, delay), self._wakeups[name].set)

    async def run(self, observer: Subscriber, *, one_at_a_time: bool = False) -> tuple[str, float]:
        """One batch. Returns (outcome, seconds until a retry is due): ``done`` (events
        handled, more may follow), ``caught_up`` (events handled, up to everything relayed
        when the run began), ``idle`` (nothing to do), ``busy`` (another process runs this
        observer), ``split`` (the batch failed and was rolled back: run again
        ``one_at_a_time``), ``retry`` (the head event failed; due again later), ``dead``.

        A batch runs without a savepoint (two round trips fewer per run): if it fails, its
        whole transaction rolls back, cursor included, and the next run takes the events one
        at a time, the head event in a savepoint so its failure can be counted on the cursor."""
        try:
            return await self._run(observer, one_at_a_time=one_at_a_time)
        except _BatchFailed as failed:
            log.warning("bus: observer batch failed; taking its events one at a time",
                        subscriber=observer.name, events=failed.events, error=describe(failed.error))
            return "split", 0.0

    async def _run(self, observer: Subscriber, *, one_at_a_time: bool) -> tuple[str, float]:
        types = types_of(observer)
        async with self.db.transaction() as session:
            cursor = await repository.lock_cursor(session, observer.name)
            if cursor is None:
                return "busy", 0.0
            now = utcnow()
            if cursor.next_attempt_at is not None and cursor.next_attempt_at > now:
                return "retry", (cursor.next_attempt_at - now).total_seconds()
            upto, rows = await repository.events_after_upto(session, cursor.position, types=types, limit=self.batch)
            if not rows:
                if upto > cursor.position:  # nothing of ours in between: skip past it
                    await repository.move_cursor(session, observer.name, upto, now)
                return "idle", 0.0
            events = [event_from_row(row) for row in rows]
            # A full batch ends at its last event; a short one read everything up to ``upto``.
            end = rows[-1].position if len(rows) == self.batch else upto
            if cursor.attempts == 0 and not one_at_a_time:
                try:
                    await self._handle(observer, session, events, savepoint=False)
                except Exception as exc:
                    if is_database_unavailable(exc):
                        raise
                    raise _BatchFailed(exc, len(events)) from exc
                await repository.move_cursor(session, observer.name, end, now)
                self._count(observer.name, events, "done")
                return ("done" if len(rows) == self.batch else "caught_up"), 0.0
            # One at a time from the head: the failing event is found and retried alone.
            head, head_row = events[0], rows[0]
            try:
                await self._handle(observer, session, [head], savepoint=True)
            except Exception as exc:
                attempts = cursor.attempts + 1
                error = describe(exc)
                if attempts >= self.retry.max_attempts:
                    await repository.add_dead_letter(session, observer.name, head, attempts=attempts, error=error,
                                                     at=now)
                    await repository.move_cursor(session, observer.name, head_row.position, now)
                    log.warning("bus: observer gave up on an event (dead letter)", subscriber=observer.name,
                                event_id=str(head.id), attempts=attempts, error=error)
                    self._count(observer.name, [head], "dead")
                    return "dead", 0.0
                delay = self.retry.delay(attempts)
                await repository.hold_cursor(session, observer.name, attempts=attempts, error=error,
                                             retry_at=now + delay, at=now)
                log.warning("bus: observer failed on an event", subscriber=observer.name, event_id=str(head.id),
                            attempts=attempts, error=error)
                DELIVERIES.labels(observer.name, "retry").inc()
                return "retry", delay.total_seconds()
            await repository.move_cursor(session, observer.name, head_row.position, now)
            self._count(observer.name, [head], "done")
            return "done", 0.0

    async def _handle(self, observer: Subscriber, session: Any, events: list[Any], *, savepoint: bool) -> None:
        token = set_current_bus(self.context)
        try:
            if savepoint:
                async with session.begin_nested():  # a failure undoes the effects, keeps the cursor lock
                    await observer.handler(session, events)
            else:
                await observer.handler(session, events)
        finally:
            reset_current_bus(token)

    @staticmethod
    def _count(name: str, events: list[Any], outcome: str) -> None:
        DELIVERIES.labels(name, outcome).inc(len(events))
        if outcome == "done":
            DELIVERY_LAG.labels(name).observe(max(0.0, (utcnow() - events[-1].time).total_seconds()))
