"""Handling one event for one subscriber, exactly once in effect.

``deliver(subscriber, event_id)`` may be called any number of times, concurrently, in
any process (the broker delivers at least once, sweeps re-drive, chaos duplicates):

1. the delivery row must be pending; an earlier pending event of the same subject for
   the same subscriber defers this one (per-subject order);
2. in one transaction: record ``(subscriber, event_id)`` in ``processed_events`` (if it
   is already there, this is a repeat: nothing happens), run the handler, mark the
   delivery done; commit;
3. on failure, in a new transaction: count the attempt and schedule the next with
   exponential backoff and jitter, or, past the limit, make it a dead letter.
"""

from __future__ import annotations

import random
import traceback
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from mercato.bus import repository
from mercato.bus.context import reset_current_bus, set_current_bus
from mercato.bus.events import CloudEvent
from mercato.bus.metrics import DELIVERIES, DELIVERY_LAG
from mercato.bus.registry import Registry
from mercato.kit.clock import utcnow
from mercato.kit.db import Database
from mercato.kit.failpoints import failpoint
from mercato.kit.logging import log

Kick = Callable[[str, uuid.UUID], Awaitable[None]]


class StaleDelivery(RuntimeError):
    """The delivery stopped being pending while its handler ran: roll the effect back."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 300.0

    def delay(self, attempt: int) -> timedelta:
        """Exponential backoff with jitter (50–100 % of the step)."""
        step = min(self.max_delay, self.base_delay * (2 ** max(0, attempt - 1)))
        return timedelta(seconds=step * random.uniform(0.5, 1.0))


def event_from_row(row) -> CloudEvent:  # type: ignore[no-untyped-def]
    return CloudEvent(type=row.type, subject=row.subject, data=row.data, id=row.id, time=row.time,
                      sequence=row.sequence)


class Deliverer:
    def __init__(self, db: Database, registry: Registry, retry: RetryPolicy, kick: Kick, *,
                 context: object = None) -> None:
        self.db = db
        self.registry = registry
        self.retry = retry
        self.kick = kick
        self.context = context

    async def deliver(self, subscriber_name: str, event_id: uuid.UUID) -> str:
        """Returns the outcome: done, duplicate, deferred, retry, dead, skipped."""
        outcome = await self._deliver(subscriber_name, event_id)
        DELIVERIES.labels(subscriber_name, outcome).inc()
        return outcome

    async def _deliver(self, subscriber_name: str, event_id: uuid.UUID) -> str:
        subscriber = self.registry.get(subscriber_name)
        await failpoint("delivery.start")
        # Cheap checks on the reader first: a duplicate or an out-of-order job must not
        # take the (single, on SQLite) write connection.
        async with self.db.read_session() as reader:
            delivery = await repository.delivery(reader, subscriber_name, event_id)
            if delivery is None or delivery.state != "pending":
                return "skipped"
            if await repository.earlier_pending_exists(reader, subscriber_name, delivery.subject, delivery.sequence):
                # The earlier event's completion hands this one on; the sweep is the fallback.
                return "deferred"
        try:
            if subscriber is None:
                raise LookupError(f"no subscriber named {subscriber_name!r} in this process")
            if subscriber.outside_transaction:  # the effect leaves the database: never hold the writer for it
                async with self.db.read_session() as reader:
                    await self._run(subscriber.handler, reader, await self._event(reader, event_id))
            async with self.db.transaction() as session:
                now = utcnow()
                if not await repository.mark_processed(session, subscriber_name, event_id, now):
                    await repository.mark_done(session, subscriber_name, event_id, now)
                    return "duplicate"
                event = await self._event(session, event_id)
                if not subscriber.outside_transaction:
                    await self._run(subscriber.handler, session, event)
                if not await repository.mark_done(session, subscriber_name, event_id, utcnow()):
                    raise StaleDelivery(f"delivery {subscriber_name}/{event_id} changed state while running")
            await failpoint("delivery.after_commit")
            DELIVERY_LAG.labels(subscriber_name).observe(max(0.0, (utcnow() - event.time).total_seconds()))
        except Exception as exc:
            return await self._failed(subscriber_name, event_id, exc)
        # The next event of this subject may go now. Looked up after the commit: a later
        # delivery that checked while this one was still pending (and deferred itself) is
        # committed by then, so it is found here; looked up inside the transaction it could
        # be missed and wait for the redelivery sweep.
        try:
            async with self.db.read_session() as reader:
                following = await repository.next_pending_in_subject(reader, subscriber_name, delivery.subject,
                                                                     delivery.sequence)
        except Exception:  # the sweep re-drives it
            log.exception("bus: could not look up the next delivery of a subject", subscriber=subscriber_name)
            following = None
        if following is not None:
            await self.kick(following.subscriber, following.event_id)
        return "done"

    @staticmethod
    async def _event(session, event_id: uuid.UUID) -> CloudEvent:  # type: ignore[no-untyped-def]
        row = await repository.event(session, event_id)
        if row is None:
            raise LookupError(f"event {event_id} is not in the outbox")
        return event_from_row(row)

    async def _run(self, handler, session, event: CloudEvent) -> None:  # type: ignore[no-untyped-def]
        await failpoint("delivery.before_handler")
        token = set_current_bus(self.context)
        try:
            await handler(session, event)
        finally:
            reset_current_bus(token)
        await failpoint("delivery.after_effect")

    async def _failed(self, subscriber_name: str, event_id: uuid.UUID, exc: Exception) -> str:
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
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
            await self.kick(following.subscriber, following.event_id)
        return "dead" if dead else "retry"
