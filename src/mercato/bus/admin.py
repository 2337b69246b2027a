"""The bus as admins see it: what it owes (the figures behind the ``/metrics`` gauges and the
admin health page, computed one way for both), sweeps' last runs, and dead-letter replay
(``POST /admin/dead-letters/{id}/replay``, ``ops/bus_endpoints.py``, and the admin console)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.audit.actions import AuditAction
from mercato.audit.service import record as audit
from mercato.bus import repository
from mercato.bus.service import Backlog, backlog  # noqa: F401  (the admin health page reads them here)
from mercato.kit.clock import utcnow
from mercato.kit.errors import Conflict, NotFound, found_or_raise
from mercato.models import EventDelivery

if TYPE_CHECKING:  # the type only: access sits above the bus
    from mercato.access.principal import Principal


class DeadLetterNotFound(NotFound):
    code, title = "dead_letter_not_found", "No such dead letter"


class NotDeadLetter(Conflict):
    code, title = "invalid_transition", "Only dead letters can be replayed"




async def sweeps(session: AsyncSession) -> list[Any]:
    """Every sweep's lease: when it last ran and whether that run went well."""
    return await repository.leases(session)


async def events(session: AsyncSession, *, event_type: str | None, subject: str | None, since: Any, until: Any,
                 before_sequence: int | None, limit: int) -> list[Any]:
    """The event history, newest first."""
    return await repository.search_events(session, event_type=event_type, subject=subject, since=since, until=until,
                                          before_sequence=before_sequence, limit=limit)


async def count_events(session: AsyncSession, *, event_type: str | None, subject: str | None, since: Any,
                       until: Any) -> int:
    return await repository.count_events(session, event_type=event_type, subject=subject, since=since, until=until)


async def dead_letters(session: AsyncSession, *, subscriber: str | None, after: Any, limit: int) -> list[EventDelivery]:
    return await repository.dead_letters(session, subscriber=subscriber, after=after, limit=limit)


async def count_dead_letters(session: AsyncSession, *, subscriber: str | None) -> int:
    return await repository.count_dead_letters(session, subscriber=subscriber)


async def dead_letter(session: AsyncSession, dead_letter_id: uuid.UUID) -> EventDelivery:
    found = await repository.delivery_by_id(session, dead_letter_id)
    if found is None or found.state != "dead":
        raise DeadLetterNotFound(f"There is no dead letter {dead_letter_id}.")
    return found


async def event_of(session: AsyncSession, event_id: uuid.UUID) -> Any:
    return await repository.event_row(session, event_id)


async def replay(session: AsyncSession, *, actor: Principal, dead_letter_id: uuid.UUID) -> EventDelivery:
    """Deliver a dead letter again with a fresh attempt budget (after fixing its cause); audited.
    The redelivery sweep picks it up (it is due now): no broker call inside the transaction."""
    existing = found_or_raise(await repository.delivery_by_id(session, dead_letter_id),
                              DeadLetterNotFound, f"There is no dead letter {dead_letter_id}.")
    # Read before revive(): it reloads the same ORM object, which would then say pending, 0 attempts.
    state, attempts = existing.state, existing.attempts
    revived = await repository.revive(session, dead_letter_id, utcnow())
    if revived is None:
        raise NotDeadLetter(f"Delivery {dead_letter_id} is {state}, not dead.")
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.dead_letter_replay,
                resource_type="dead_letter", resource_id=dead_letter_id,
                before={"state": "dead", "attempts": attempts}, after={"state": "pending"})
    return revived
