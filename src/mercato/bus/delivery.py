"""Handling one event for one step subscriber, exactly once in effect.

``deliver(subscriber, event_id)`` may be called any number of times, concurrently, in
any process (the broker delivers at least once, sweeps re-drive, chaos duplicates). In
one transaction:

1. claim the delivery: a guarded ``UPDATE`` marks it done only if it is pending and no
   earlier event of its subject is pending for the subscriber (per-subject order) — a
   repeat, or an event that must wait, changes nothing and ends here;
2. record ``(subscriber, event_id)`` in ``processed_events`` (already there: a repeat);
3. run the handler; commit. The claim, the inbox row and the effects commit together.

On failure the transaction rolls back (the delivery is pending again) and a second one
counts the attempt and schedules the next with exponential backoff and jitter, or, past
the limit, makes it a dead letter. After a success the subject's next pending delivery, if
one waits, is handed on.
"""

from __future__ import annotations

import random
import traceback
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from mercato.bus import repository
from mercato.bus.context import HandlerContext, reset_current_bus, set_current_bus
from mercato.bus.events import CloudEvent
from mercato.bus.metrics import DELIVERIES, DELIVERY_LAG
from mercato.bus.registry import Registry
from mercato.kit.clock import utcnow
from mercato.kit.db import Database
from mercato.kit.failpoints import failpoint
from mercato.kit.logging import log

Kick = Callable[[str, uuid.UUID], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 300.0

    def delay(self, attempt: int) -> timedelta:
        """Exponential backoff with jitter (50–100 % of the step)."""
        step = min(self.max_delay, self.base_delay * (2 ** max(0, attempt - 1)))
        return timedelta(seconds=step * random.uniform(0.5, 1.0))


def event_from_row(row: Any) -> CloudEvent:
    return CloudEvent(type=row.type, subject=row.subject, data=row.data, id=row.id, time=row.time,
                      sequence=row.sequence)


def describe(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


class RecentEvents:
    """The events this process relayed lately, so a delivery here need not read its event
    back (outbox rows never change). Bounded; a miss reads the row."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._events: OrderedDict[uuid.UUID, CloudEvent] = OrderedDict()

    def remember(self, event: CloudEvent) -> None:
        self._events[event.id] = event
        if len(self._events) > self.size:
            self._events.popitem(last=False)

    def get(self, event_id: uuid.UUID) -> CloudEvent | None:
        return self._events.get(event_id)


class Deliverer:
    def __init__(self, db: Database, registry: Registry, retry: RetryPolicy, kick: Kick, *,
                 context: HandlerContext | None = None, recent: RecentEvents | None = None) -> None:
        self.db = db
        self.registry = registry
        self.retry = retry
        self.kick = kick
        self.context = context
        self.recent = recent or RecentEvents()

    async def deliver(self, subscriber_name: str, event_id: uuid.UUID) -> str:
        """Returns the outcome: done, duplicate, deferred, retry, dead, skipped."""
        outcome = await self._deliver(subscriber_name, event_id)
        DELIVERIES.labels(subscriber_name, outcome).inc()
        return outcome

    async def _event(self, session: Any, event_id: uuid.UUID) -> CloudEvent:
        event = self.recent.get(event_id)
        if event is not None:
            return event
        row = await repository.event_row(session, event_id)
        if row is None:
            raise LookupError(f"event {event_id} is not in the outbox")
        return event_from_row(row)

    async def _deliver(self, subscriber_name: str, event_id: uuid.UUID) -> str:
        subscriber = self.registry.get(subscriber_name)
        await failpoint("delivery.start")
        position: tuple[str, int] | None = None
        try:
            if subscriber is None:
                raise LookupError(f"no subscriber named {subscriber_name!r} in this process")
            if subscriber.outside_transaction:
                # The effect leaves the database: never hold the writer for it. Only a
                # delivery that is due now runs it (a repeat or a waiting event does not).
                async with self.db.read_session() as reader:
                    found = await repository.delivery_state(reader, subscriber_name, event_id)
                    if found is None or found[0] != "pending":
                        return "skipped"
                    if await repository.earlier_pending_exists(reader, subscriber_name, found[1], found[2]):
                        return "deferred"
                    await self._run(subscriber, reader, await self._event(reader, event_id))
            async with self.db.transaction() as session:
                now = utcnow()
                if not await repository.claim_delivery(session, subscriber_name, event_id, now):
                    found = await repository.delivery_state(session, subscriber_name, event_id)
                    # Pending still: an earlier event of the subject goes first, and its
                    # completion hands this one on (the sweep is the fallback).
                    return "deferred" if found is not None and found[0] == "pending" else "skipped"
                event = await self._event(session, event_id)
                position = (event.subject, event.sequence or 0)
                if not await repository.mark_processed(session, subscriber_name, event_id, now):
                    return "duplicate"
                if not subscriber.outside_transaction:
                    await self._run(subscriber, session, event)
            await failpoint("delivery.after_commit")
            DELIVERY_LAG.labels(subscriber_name).observe(max(0.0, (utcnow() - event.time).total_seconds()))
        except Exception as exc:
            return await self._failed(subscriber_name, event_id, exc)
        await self._hand_on(subscriber_name, *position)
        return "done"

    async def _hand_on(self, subscriber_name: str, subject: str, sequence: int) -> None:
        """The next event of this subject may go now. Looked up after the commit: a later
        delivery that checked while this one was still pending (and deferred itself) is
        committed by then, so it is found here; looked up inside the transaction it could be
        missed and wait for the redelivery sweep."""
        try:
            async with self.db.read_session() as reader:
                following = await repository.next_pending_in_subject(reader, subscriber_name, subject, sequence)
        except Exception:  # the sweep re-drives it
            log.exception("bus: could not look up the next delivery of a subject", subscriber=subscriber_name)
            return
        if following is not None:
            await self.kick(subscriber_name, following)

    async def _run(self, subscriber: Any, session: Any, event: CloudEvent) -> None:
        await failpoint("delivery.before_handler")
        token = set_current_bus(self.context)
        try:
            await subscriber.handle_one(session, event)
        finally:
            reset_current_bus(token)
        await failpoint("delivery.after_effect")

    async def _failed(self, subscriber_name: str, event_id: uuid.UUID, exc: Exception) -> str:
        error = describe(exc)
        try:
            async with self.db.transaction() as session:
                delivery = await repository.delivery(session, subscriber_name, event_id)
                if delivery is None or delivery.state != "pending":
                    return "skipped"
                attempts = delivery.attempts + 1
                dead = attempts >= self.retry.max_attempts
                now = utcnow()
                await repository.record_failure(session, subscriber_name, event_id, attempts=attempts, error=error,
                                                next_attempt_at=now + self.retry.delay(attempts), dead=dead, at=now)
                following = None
                if dead:  # a dead letter no longer holds its subject back
                    following = await repository.next_pending_in_subject(session, subscriber_name, delivery.subject,
                                                                         delivery.sequence)
        except Exception:  # the database itself is failing: the sweep re-drives later
            log.exception("bus: could not record a failed delivery", subscriber=subscriber_name, event_id=str(event_id))
            return "retry"
        log.warning("bus: delivery failed", subscriber=subscriber_name, event_id=str(event_id), attempts=attempts,
                    dead=dead, error=error)
        if following is not None:
            await self.kick(subscriber_name, following)
        return "dead" if dead else "retry"
