"""The relay: committed outbox rows -> positions, step deliveries -> the broker; observers woken.

One transaction per batch of events:

- numbers the events in the relay's order (``position``; relays take turns, so positions
  are handed out in commit order and an observer's cursor never skips an event);
- writes one delivery row per step subscriber (observers follow the positions with their
  own cursor instead, so an event costs them no row).

The fan-out is committed before anything is handed to the broker, so the database always
knows what is owed to whom: a crash between the commit and the hand-off, a lost broker
message or a wiped broker only delays delivery until the redelivery sweep re-drives what
is still pending.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from mercato.bus import repository
from mercato.bus.delivery import Kick, event_from_row
from mercato.bus.events import CloudEvent
from mercato.bus.registry import Registry
from mercato.kit.clock import utcnow
from mercato.kit.db import Database
from mercato.kit.failpoints import failpoint

BATCH = 500


@dataclass
class Relayed:
    """What one relay pass did."""

    count: int = 0
    # Observers that have new events to read.
    observers: set[str] = field(default_factory=set)
    # The subjects of the events relayed (waiters in this process are told: bus/watch.py).
    subjects: set[str] = field(default_factory=set)


class Relay:
    def __init__(self, db: Database, registry: Registry, kick: Kick, *, redelivery_timeout: timedelta,
                 remember: Callable[[CloudEvent], None] | None = None) -> None:
        self.db = db
        self.registry = registry
        self.kick = kick
        self.redelivery_timeout = redelivery_timeout
        # Keeps the relayed events in memory for a delivery in this process (no re-read).
        self.remember = remember

    async def relay_once(self) -> Relayed:
        """Relay one batch."""
        handoff: list[tuple[str, uuid.UUID]] = []
        relayed = Relayed()
        async with self.db.transaction() as session:
            await repository.lock_relay(session)
            position, rows = await repository.unrelayed_events(session, limit=BATCH)
            if not rows:
                return relayed
            now = utcnow()
            positions: list[tuple[int, int]] = []
            deliveries = []
            seen: set[tuple[str, str]] = set()
            observers = self.registry.observers
            for row in rows:
                position += 1
                positions.append((row.sequence, position))
                event = event_from_row(row)
                if self.remember is not None:
                    self.remember(event)
                relayed.observers.update(o.name for o in observers if o.wants(row.type))
                relayed.subjects.add(row.subject)
                for subscriber in self.registry.steps_for(row.type):
                    if not subscriber.concerns(event):
                        continue
                    first_of_subject = (subscriber.name, row.subject) not in seen
                    seen.add((subscriber.name, row.subject))
                    deliveries.append({
                        "id": uuid.uuid4(), "subscriber": subscriber.name, "event_id": row.id,
                        "sequence": row.sequence, "subject": row.subject, "event_type": row.type,
                        "state": "pending", "attempts": 0, "next_attempt_at": now + self.redelivery_timeout,
                        "created_at": now, "updated_at": now,
                    })
                    # Later events of a subject are handed on by the completion of the
                    # earlier one (per-subject order); only the first goes to the broker now.
                    if first_of_subject:
                        handoff.append((subscriber.name, row.id))
            await repository.add_deliveries(session, deliveries)
            await repository.mark_relayed_at_positions(session, positions, now)
        relayed.count = len(rows)
        await failpoint("relay.after_fanout")
        for subscriber_name, event_id in handoff:
            await self.kick(subscriber_name, event_id)
            await failpoint("relay.after_kick")
        return relayed

    async def drain(self, on_relayed: Callable[[Relayed], None] | None = None) -> int:
        """Relay until a pass finds less than a full batch: that pass read every event
        committed before it began. (An event committed since wakes the relay loop again; a
        caller that must see everything it committed itself calls this after its commit.)"""
        total = 0
        while True:
            relayed = await self.relay_once()
            total += relayed.count
            if relayed.count and on_relayed is not None:
                on_relayed(relayed)
            if relayed.count < BATCH:
                return total
