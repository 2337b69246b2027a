"""Every query of the bus: outbox, deliveries, processed events, observer cursors, sweep leases.

The delivery path runs thousands of times a second under load: its statements are Core
statements on the tables (no ORM objects are loaded or tracked there)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, exists, func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from mercato.kit.pagination import after_key, count_matching
from mercato.models import BusCursor, EventDelivery, OutboxEvent, ProcessedEvent, SweepLease

OUTBOX = OutboxEvent.__table__
DELIVERIES = EventDelivery.__table__
CURSORS = BusCursor.__table__
PROCESSED = ProcessedEvent.__table__
# The columns a handler's CloudEvent is made of.
EVENT_COLUMNS = (OUTBOX.c.id, OUTBOX.c.type, OUTBOX.c.subject, OUTBOX.c.time, OUTBOX.c.data, OUTBOX.c.sequence,
                 OUTBOX.c.position)
# pg_advisory_xact_lock key of the relay ("mercato relay"): one relay numbers events at a time.
RELAY_LOCK_KEY = 0x6D65726361746F


def _dialect(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind is not None else "sqlite"


# --- outbox ------------------------------------------------------------------------------------

async def event(session: AsyncSession, event_id: uuid.UUID) -> OutboxEvent | None:
    return await session.scalar(select(OutboxEvent).where(OutboxEvent.id == event_id))


async def unrelayed_count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(OutboxEvent)
                                    .where(OutboxEvent.relayed_at.is_(None))) or 0)


async def count_events(session: AsyncSession, **filters: Any) -> int:
    return await count_matching(session, _events(**filters))


async def search_events(session: AsyncSession, *, before_sequence: int | None, limit: int,
                        **filters: Any) -> list[OutboxEvent]:
    """Newest first; ``before_sequence`` continues a previous page."""
    query = _events(**filters)
    if before_sequence is not None:
        query = query.where(OutboxEvent.sequence < before_sequence)
    return list(await session.scalars(query.order_by(OutboxEvent.sequence.desc()).limit(limit)))


def _events(*, event_type: str | None, subject: str | None, since: datetime | None,
            until: datetime | None):  # type: ignore[no-untyped-def]
    query = select(OutboxEvent)
    if event_type:
        query = query.where(OutboxEvent.type == event_type)
    if subject:
        query = query.where(OutboxEvent.subject == subject)
    if since is not None:
        query = query.where(OutboxEvent.time >= since)
    if until is not None:
        query = query.where(OutboxEvent.time < until)
    return query


async def events_for_user_after(session: AsyncSession, user_id: uuid.UUID, after_sequence: int,
                                *, limit: int) -> list[OutboxEvent]:
    return list(await session.scalars(
        select(OutboxEvent).where(OutboxEvent.user_id == user_id, OutboxEvent.sequence > after_sequence)
        .order_by(OutboxEvent.sequence).limit(limit)))


async def latest_sequence(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.max(OutboxEvent.sequence))) or 0)


# --- the relay -----------------------------------------------------------------------------------

async def lock_relay(session: AsyncSession) -> None:
    """Relays take turns for the rest of the transaction (PostgreSQL; SQLite has one writer),
    so positions are handed out in commit order."""
    if _dialect(session) == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": RELAY_LOCK_KEY})


async def unrelayed_events(session: AsyncSession, *, limit: int) -> tuple[int, list[Any]]:
    """The highest position handed out so far and the oldest committed events not yet
    relayed (rows of ``EVENT_COLUMNS``), in one statement. Called under the relay lock."""
    head = OUTBOX.alias("head")
    top = select(func.max(head.c.position)).scalar_subquery()
    rows = list(await session.execute(select(top.label("top"), *EVENT_COLUMNS).where(OUTBOX.c.relayed_at.is_(None))
                                      .order_by(OUTBOX.c.sequence).limit(limit)))
    return (int(rows[0].top or 0) if rows else 0), rows


async def max_position(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.max(OUTBOX.c.position))) or 0)


async def mark_relayed_at_positions(session: AsyncSession, positions: list[tuple[int, int]], at: datetime) -> None:
    """``positions``: (sequence, position) pairs."""
    if positions:
        await session.execute(
            update(OUTBOX).where(OUTBOX.c.sequence == bindparam("b_sequence"))
            .values(relayed_at=at, position=bindparam("b_position")),
            [{"b_sequence": sequence, "b_position": position} for sequence, position in positions])


# --- deliveries ----------------------------------------------------------------------------------

async def add_deliveries(session: AsyncSession, rows: list[dict[str, object]]) -> None:
    if rows:
        await session.execute(insert(DELIVERIES), rows)


async def claim_delivery(session: AsyncSession, subscriber: str, event_id: uuid.UUID, at: datetime) -> bool:
    """Mark a pending delivery done, unless an earlier event of its subject is still pending
    for the subscriber: one guarded statement in the delivery's transaction. The handler's
    effects commit with it; if they fail, the rollback makes the delivery pending again. On
    PostgreSQL a concurrent copy waits for the row and then finds it done."""
    earlier = DELIVERIES.alias("earlier")
    result = await session.execute(
        update(DELIVERIES).where(
            DELIVERIES.c.subscriber == subscriber, DELIVERIES.c.event_id == event_id, DELIVERIES.c.state == "pending",
            ~exists().where(earlier.c.subscriber == subscriber, earlier.c.subject == DELIVERIES.c.subject,
                            earlier.c.state == "pending", earlier.c.sequence < DELIVERIES.c.sequence))
        .values(state="done", done_at=at, updated_at=at, last_error=None))
    return result.rowcount == 1  # type: ignore[attr-defined]


async def delivery_state(session: AsyncSession, subscriber: str, event_id: uuid.UUID) -> tuple[str, str, int] | None:
    """(state, subject, sequence) of a delivery, or None."""
    row = (await session.execute(select(DELIVERIES.c.state, DELIVERIES.c.subject, DELIVERIES.c.sequence).where(
        DELIVERIES.c.subscriber == subscriber, DELIVERIES.c.event_id == event_id))).first()
    return (row[0], row[1], row[2]) if row is not None else None


async def event_row(session: AsyncSession, event_id: uuid.UUID) -> Any:
    return (await session.execute(select(*EVENT_COLUMNS).where(OUTBOX.c.id == event_id))).first()


async def delivery(session: AsyncSession, subscriber: str, event_id: uuid.UUID) -> EventDelivery | None:
    return await session.get(EventDelivery, (subscriber, event_id))


async def delivery_by_id(session: AsyncSession, delivery_id: uuid.UUID) -> EventDelivery | None:
    return await session.scalar(select(EventDelivery).where(EventDelivery.id == delivery_id)
                                .execution_options(populate_existing=True))


async def earlier_pending_exists(session: AsyncSession, subscriber: str, subject: str, sequence: int) -> bool:
    return await session.scalar(
        select(EventDelivery.event_id).where(
            EventDelivery.subscriber == subscriber, EventDelivery.subject == subject,
            EventDelivery.sequence < sequence, EventDelivery.state == "pending").limit(1)
    ) is not None


async def next_pending_in_subject(session: AsyncSession, subscriber: str, subject: str,
                                  sequence: int) -> uuid.UUID | None:
    """The event id of the subscriber's next pending delivery of this subject."""
    return await session.scalar(  # type: ignore[no-any-return]
        select(DELIVERIES.c.event_id).where(
            DELIVERIES.c.subscriber == subscriber, DELIVERIES.c.subject == subject,
            DELIVERIES.c.sequence > sequence, DELIVERIES.c.state == "pending")
        .order_by(DELIVERIES.c.sequence).limit(1))


async def record_failure(session: AsyncSession, subscriber: str, event_id: uuid.UUID, *, attempts: int,
                         error: str, next_attempt_at: datetime, dead: bool, at: datetime) -> bool:
    result = await session.execute(
        update(EventDelivery).where(EventDelivery.subscriber == subscriber, EventDelivery.event_id == event_id,
                                    EventDelivery.state == "pending")
        .values(attempts=attempts, last_error=error[:4000], next_attempt_at=next_attempt_at,
                state="dead" if dead else "pending", updated_at=at))
    return result.rowcount == 1  # type: ignore[attr-defined]


async def take_due(session: AsyncSession, *, now: datetime, lease_until: datetime,
                   limit: int) -> list[tuple[str, uuid.UUID]]:
    """Due pending deliveries that head their subject's queue, pushed to ``lease_until``
    in one guarded UPDATE … RETURNING: two sweeps at once never both take the same one,
    and events queued behind an earlier one are left to its completion."""
    earlier = aliased(EventDelivery)
    heads = (
        select(EventDelivery.id).where(
            EventDelivery.state == "pending", EventDelivery.next_attempt_at <= now,
            ~exists().where(earlier.subscriber == EventDelivery.subscriber, earlier.subject == EventDelivery.subject,
                            earlier.state == "pending", earlier.sequence < EventDelivery.sequence))
        .order_by(EventDelivery.sequence).limit(limit)
    )
    result = await session.execute(
        update(EventDelivery)
        .where(EventDelivery.id.in_(heads.scalar_subquery()), EventDelivery.state == "pending",
               EventDelivery.next_attempt_at <= now)
        .values(next_attempt_at=lease_until)
        .returning(EventDelivery.subscriber, EventDelivery.event_id)
        .execution_options(synchronize_session=False))
    return [(subscriber, event_id) for subscriber, event_id in result]


async def all_pending(session: AsyncSession, *, limit: int) -> list[EventDelivery]:
    return list(await session.scalars(select(EventDelivery).where(EventDelivery.state == "pending")
                                      .order_by(EventDelivery.sequence).limit(limit)))


async def counts_by_state(session: AsyncSession) -> dict[tuple[str, str], int]:
    rows = await session.execute(select(EventDelivery.subscriber, EventDelivery.state, func.count())
                                 .group_by(EventDelivery.subscriber, EventDelivery.state))
    return {(subscriber, state): int(count) for subscriber, state, count in rows}


def _dead(subscriber: str | None):  # type: ignore[no-untyped-def]
    query = select(EventDelivery).where(EventDelivery.state == "dead")
    if subscriber:
        query = query.where(EventDelivery.subscriber == subscriber)
    return query


async def count_dead_letters(session: AsyncSession, *, subscriber: str | None) -> int:
    return await count_matching(session, _dead(subscriber))


async def dead_letters(session: AsyncSession, *, subscriber: str | None, after: tuple[datetime, uuid.UUID] | None,
                       limit: int) -> list[EventDelivery]:
    query = _dead(subscriber)
    return list(await session.scalars(after_key(query, EventDelivery.updated_at, EventDelivery.id, after, limit)))


async def revive(session: AsyncSession, delivery_id: uuid.UUID, at: datetime) -> EventDelivery | None:
    """dead -> pending with a fresh attempt budget (replay)."""
    result = await session.execute(
        update(EventDelivery).where(EventDelivery.id == delivery_id, EventDelivery.state == "dead")
        .values(state="pending", attempts=0, next_attempt_at=at, updated_at=at))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return await delivery_by_id(session, delivery_id)


# --- processed events (inbox) --------------------------------------------------------------------

async def mark_processed(session: AsyncSession, subscriber: str, event_id: uuid.UUID, at: datetime) -> bool:
    """False when this subscriber already processed this event (a repeated delivery).

    One INSERT … ON CONFLICT DO NOTHING: on PostgreSQL a concurrent copy blocks on the
    unique key until the first commits, then finds the row and does nothing."""
    statement = (pg_insert if _dialect(session) == "postgresql" else sqlite_insert)(PROCESSED).values(
        subscriber=subscriber, event_id=event_id, processed_at=at).on_conflict_do_nothing()
    result = await session.execute(statement)
    return result.rowcount == 1  # type: ignore[attr-defined]


# --- observer cursors ------------------------------------------------------------------------------

async def start_cursors(session: AsyncSession, names: list[str], at: datetime) -> None:
    """A cursor for every observer that has none yet, at the relay's current position: an
    observer added to a running store sees the events from then on (as a new step
    subscriber gets deliveries only for events relayed after it exists)."""
    if not names:
        return
    held = set(await session.scalars(select(CURSORS.c.subscriber).where(CURSORS.c.subscriber.in_(names))))
    missing = [name for name in names if name not in held]
    if not missing:
        return
    start = await max_position(session)
    insert_ = pg_insert if _dialect(session) == "postgresql" else sqlite_insert
    await session.execute(insert_(CURSORS).on_conflict_do_nothing(), [
        {"subscriber": name, "position": start, "attempts": 0, "updated_at": at} for name in missing])


async def cursors_behind(session: AsyncSession, names: list[str]) -> set[str]:
    """The observers among ``names`` with something to do: relayed events past their cursor,
    or an event held for a retry."""
    if not names:
        return set()
    head = await max_position(session)
    rows = await session.execute(select(CURSORS.c.subscriber).where(
        CURSORS.c.subscriber.in_(names), or_(CURSORS.c.position < head, CURSORS.c.next_attempt_at.is_not(None))))
    return {row.subscriber for row in rows}


async def lock_cursor(session: AsyncSession, subscriber: str) -> Any:
    """The observer's cursor row, locked for this transaction; None while another process
    runs the same observer (PostgreSQL ``SKIP LOCKED``; on SQLite the write transaction
    already excludes everyone)."""
    query = select(CURSORS.c.position, CURSORS.c.attempts, CURSORS.c.next_attempt_at).where(
        CURSORS.c.subscriber == subscriber)
    if _dialect(session) == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return (await session.execute(query)).first()


async def events_after_upto(session: AsyncSession, position: int, *, types: frozenset[str] | None,
                            limit: int) -> tuple[int, list[Any]]:
    """The relay's highest position and the relayed events after ``position`` up to it (of
    ``types``; None: every type), in the relay's order, as rows of ``EVENT_COLUMNS``. One
    statement, so one snapshot: the head read with no events of ours below it is safe to move
    the cursor to (a head read in a later statement could pass an event committed between)."""
    head = OUTBOX.alias("head")
    top = select(func.max(head.c.position).label("upto")).subquery("top")
    matching = [OUTBOX.c.position > position, OUTBOX.c.position <= top.c.upto]
    if types is not None:
        matching.append(OUTBOX.c.type.in_(sorted(types)))
    query = (select(top.c.upto, *EVENT_COLUMNS).select_from(top.outerjoin(OUTBOX, and_(*matching)))
             .order_by(OUTBOX.c.position).limit(limit))
    rows = list(await session.execute(query))
    upto = int(rows[0].upto or 0) if rows else 0
    return upto, [row for row in rows if row.id is not None]


async def move_cursor(session: AsyncSession, subscriber: str, position: int, at: datetime) -> None:
    await session.execute(update(CURSORS).where(CURSORS.c.subscriber == subscriber).values(
        position=position, attempts=0, next_attempt_at=None, last_error=None, updated_at=at))


async def hold_cursor(session: AsyncSession, subscriber: str, *, attempts: int, error: str,
                      retry_at: datetime, at: datetime) -> None:
    """The event at the cursor's head failed: count it and try again at ``retry_at``."""
    await session.execute(update(CURSORS).where(CURSORS.c.subscriber == subscriber).values(
        attempts=attempts, last_error=error[:4000], next_attempt_at=retry_at, updated_at=at))


async def add_dead_letter(session: AsyncSession, subscriber: str, event: Any, *, attempts: int, error: str,
                          at: datetime) -> None:
    """An observer gave up on one event: it becomes a dead letter like a step's (admins see
    and replay it; a replay delivers it on its own), and the cursor moves past it."""
    insert_ = pg_insert if _dialect(session) == "postgresql" else sqlite_insert
    await session.execute(insert_(DELIVERIES).values(
        id=uuid.uuid4(), subscriber=subscriber, event_id=event.id, sequence=event.sequence, subject=event.subject,
        event_type=event.type, state="dead", attempts=attempts, next_attempt_at=at, last_error=error[:4000],
        created_at=at, updated_at=at).on_conflict_do_nothing())


async def cursors(session: AsyncSession) -> dict[str, int]:
    return {name: int(position) for name, position in await session.execute(
        select(CURSORS.c.subscriber, CURSORS.c.position))}


async def anything_owed(session: AsyncSession, observers: dict[str, frozenset[str] | None]) -> bool:
    """Whether the bus owes any work: an unrelayed event, a pending delivery, or an event an
    observer has not read yet. One statement: one snapshot on PostgreSQL, so work that moves
    from one question to the next between two reads cannot slip through."""
    questions = [exists().where(OUTBOX.c.relayed_at.is_(None)),
                 exists().where(DELIVERIES.c.state == "pending")]
    for name, types in observers.items():
        beyond = OUTBOX.c.position > select(CURSORS.c.position).where(CURSORS.c.subscriber == name).scalar_subquery()
        questions.append(exists().where(beyond, OUTBOX.c.type.in_(sorted(types))) if types is not None
                         else exists().where(beyond))
    answer = (await session.execute(select(*[q.correlate(None) for q in questions]))).one()
    return any(answer)


async def observers_owed(session: AsyncSession, observers: dict[str, frozenset[str] | None]) -> dict[str, int]:
    """Per observer, the relayed events beyond its cursor of the types it observes (one statement)."""
    if not observers:
        return {}
    counts = []
    for name, types in observers.items():
        beyond = OUTBOX.c.position > select(CURSORS.c.position).where(CURSORS.c.subscriber == name).scalar_subquery()
        where = [beyond, OUTBOX.c.type.in_(sorted(types))] if types is not None else [beyond]
        counts.append(select(func.count()).select_from(OUTBOX).where(*where).scalar_subquery())
    answer = (await session.execute(select(*counts))).one()
    return {name: int(count or 0) for name, count in zip(observers, answer, strict=True)}


async def purge_processed_before(session: AsyncSession, before: datetime) -> int:
    result = await session.execute(delete(ProcessedEvent).where(ProcessedEvent.processed_at < before))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- sweep leases -----------------------------------------------------------------------------

async def take_lease(session: AsyncSession, name: str, holder: str, now: datetime, until: datetime) -> bool:
    result = await session.execute(update(SweepLease).where(
        SweepLease.name == name, or_(SweepLease.expires_at <= now, SweepLease.holder == holder))
        .values(holder=holder, expires_at=until))
    if result.rowcount == 1:  # type: ignore[attr-defined]
        return True
    if await session.get(SweepLease, name) is not None:
        return False
    try:
        async with session.begin_nested():
            session.add(SweepLease(name=name, holder=holder, expires_at=until))
            await session.flush()
    except IntegrityError:
        return False
    return True


async def finish_lease(session: AsyncSession, name: str, holder: str, *, at: datetime, next_at: datetime,
                       ok: bool, error: str | None) -> None:
    """Record the run; nobody runs the sweep again before ``next_at``."""
    await session.execute(update(SweepLease).where(SweepLease.name == name, SweepLease.holder == holder)
                          .values(expires_at=next_at, last_run_at=at, last_ok=ok, last_error=error))


async def leases(session: AsyncSession) -> list[SweepLease]:
    return list(await session.scalars(select(SweepLease).order_by(SweepLease.name)))
