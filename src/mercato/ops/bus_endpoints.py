"""Event history and dead letters, for admins (E1, E3)."""

from __future__ import annotations

import base64
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request

from mercato.access.dependencies import requires
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.bus import admin
from mercato.bus.admin import DeadLetterNotFound, NotDeadLetter
from mercato.bus.schemas import DeadLetterRead, EventRead
from mercato.kit.errors import ValidationFailed
from mercato.kit.pagination import CursorParam, InvalidCursor, Limit, Total, decode_cursor, encode_cursor, keyset_page
from mercato.kit.schemas import Page, Timestamp
from mercato.platform.routing import ReadSession, TransactionalRoute, WriteSession

router = APIRouter(route_class=TransactionalRoute, tags=["admin"], prefix="/admin")


MAX_SEQUENCE = 2**63 - 1  # BIGINT: a larger cursor is not one we handed out


def _sequence_cursor(value: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{value}".encode()).decode().rstrip("=")


def _read_sequence_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = raw.partition(":")
        if prefix != "seq" or not number.isdigit():
            raise ValueError(prefix)
        value = int(number)
        if not 0 < value <= MAX_SEQUENCE:
            raise ValueError(number)
        return value
    except ValueError as exc:
        raise InvalidCursor("Use the next_cursor value from the previous page as it was given.",
                            errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor",
                                     "type": "invalid_cursor"}]) from exc


@router.get("/events", response_model=Page[EventRead])
async def list_events(
    actor: Annotated[Principal, requires(Permission.event_read)], session: ReadSession,
    type: Annotated[str | None, Query(max_length=100)] = None,
    subject: Annotated[str | None, Query(max_length=128)] = None,
    since: Timestamp | None = None, until: Timestamp | None = None,
    cursor: CursorParam = None, limit: Limit = 20, total: Total = False,
) -> Page[EventRead]:
    """Event history, newest first, filtered by type, subject and time range (`since` inclusive,
    `until` exclusive)."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise ValidationFailed(f"{name} needs a timezone (RFC 3339, e.g. 2026-01-01T00:00:00Z).",
                                   errors=[{"loc": ["query", name], "msg": "timezone required", "type": "value_error"}])
    rows = await admin.events(session, event_type=type, subject=subject, since=since, until=until,
                              before_sequence=_read_sequence_cursor(cursor), limit=limit + 1)
    page, next_cursor = keyset_page(rows, limit, lambda row: _sequence_cursor(row.sequence))
    items = [EventRead(id=r.id, source=r.source, type=r.type, subject=r.subject, time=r.time,
                       sequence=str(r.sequence), data=r.data) for r in page]
    counted = await admin.count_events(session, event_type=type, subject=subject, since=since,
                                       until=until) if total else None
    return Page[EventRead](items=items, next_cursor=next_cursor, total=counted)


@router.get("/dead-letters", response_model=Page[DeadLetterRead])
async def list_dead_letters(
    actor: Annotated[Principal, requires(Permission.dead_letter_manage)], session: ReadSession,
    subscriber: Annotated[str | None, Query(max_length=100)] = None, cursor: CursorParam = None, limit: Limit = 20,
    total: Total = False,
) -> Page[DeadLetterRead]:
    """Deliveries that failed every attempt, newest first."""
    rows = await admin.dead_letters(session, subscriber=subscriber, after=decode_cursor(cursor), limit=limit + 1)
    page, next_cursor = keyset_page(rows, limit, lambda row: encode_cursor(row.updated_at, row.id))
    items = [_dead_letter(r) for r in page]
    counted = await admin.count_dead_letters(session, subscriber=subscriber) if total else None
    return Page[DeadLetterRead](items=items, next_cursor=next_cursor, total=counted)


@router.post("/dead-letters/{dead_letter_id}/replay", status_code=202, response_model=DeadLetterRead,
             responses=DeadLetterNotFound.responses(NotDeadLetter))
async def replay_dead_letter(dead_letter_id: uuid.UUID, request: Request, session: WriteSession,
                             actor: Annotated[Principal, requires(Permission.dead_letter_manage)]) -> DeadLetterRead:
    """Deliver a dead letter again with a fresh attempt budget (after fixing its cause)."""
    return _dead_letter(await admin.replay(session, actor=actor, dead_letter_id=dead_letter_id))


def _dead_letter(row) -> DeadLetterRead:  # type: ignore[no-untyped-def]
    return DeadLetterRead(id=row.id, subscriber=row.subscriber, event_id=row.event_id, event_type=row.event_type,
                          subject=row.subject, state=row.state, attempts=row.attempts, last_error=row.last_error,
                          failed_at=row.updated_at)
