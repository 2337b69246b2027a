"""The relay: committed outbox rows -> one delivery row per subscriber -> the broker.

The fan-out is committed before anything is handed to the broker, so the database
always knows what is owed to whom: a crash between the commit and the hand-off, a lost
broker message or a wiped broker only delays delivery until the redelivery sweep
re-drives what is still pending.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from mercato.bus import repository
from mercato.bus.delivery import Kick
from mercato.bus.registry import Registry
from mercato.kit.clock import utcnow
from mercato.kit.db import Database
from mercato.kit.failpoints import failpoint

BATCH = 200


class Relay:
    def __init__(self, db: Database, registry: Registry, kick: Kick, *, redelivery_timeout: timedelta) -> None:
        self.db = db
        self.registry = registry
        self.kick = kick
        self.redelivery_timeout = redelivery_timeout

    async def relay_once(self) -> int:
        """Fan out one batch; returns how many events it relayed."""
        handoff: list[tuple[str, uuid.UUID]] = []
        async with self.db.transaction() as session:
            rows = await repository.unrelayed(session, limit=BATCH)
            if not rows:
                return 0
            now = utcnow()
            deliveries = []
            seen: set[tuple[str, str]] = set()
            for row in rows:
                for subscriber in self.registry.for_type(row.type):
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
            await repository.mark_relayed(session, [row.sequence for row in rows], now)
        await failpoint("relay.after_fanout")
        for subscriber_name, event_id in handoff:
            await self.kick(subscriber_name, event_id)
            await failpoint("relay.after_kick")
        return len(rows)

    async def drain(self) -> int:
        total = 0
        while (count := await self.relay_once()):
            total += count
        return total
