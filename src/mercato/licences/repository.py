"""Every query on licence keys (the ``licence_keys`` table); the order line's link to its key is orders'.

Handing out a key is a guarded ``UPDATE … WHERE order_line_id IS NULL``: of two buyers
racing for one key, one gets it and the other looks for the next. On PostgreSQL the
candidate is picked ``FOR UPDATE SKIP LOCKED`` so concurrent buyers pick different keys
instead of queueing on the same one; on SQLite (where ``FOR UPDATE`` renders to nothing)
the single writer connection serializes them. ``order_line_id`` is unique: an order line
can never hold two keys.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.models import LicenceKey, OrderLine


def _insert(session: AsyncSession):  # type: ignore[no-untyped-def]
    dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
    return dialect.insert(LicenceKey)


async def add_keys(session: AsyncSession, listing_id: uuid.UUID, keys: Sequence[str], *, at: datetime) -> int:
    """Insert the keys the listing does not have yet; returns how many were new. A key
    already in the pool (or inserted meanwhile by a concurrent upload) is left alone."""
    if not keys:
        return 0
    # One microsecond apart, so that keys go out in the order they were uploaded (oldest first).
    statement = _insert(session).values([
        {"id": uuid.uuid4(), "listing_id": listing_id, "key": key, "order_line_id": None, "assigned_at": None,
         "created_at": at + timedelta(microseconds=position)} for position, key in enumerate(keys)])
    statement = statement.on_conflict_do_nothing(index_elements=[LicenceKey.listing_id, LicenceKey.key])
    rows = (await session.execute(statement.returning(LicenceKey.id))).all()
    return len(rows)


async def counts(session: AsyncSession, listing_id: uuid.UUID) -> tuple[int, int]:
    """(keys in the pool, keys not handed out yet)."""
    total, free = (await session.execute(
        select(func.count(LicenceKey.id),
               func.count(LicenceKey.id).filter(LicenceKey.order_line_id.is_(None)))
        .where(LicenceKey.listing_id == listing_id))).one()
    return int(total), int(free)


async def has_pool(session: AsyncSession, listing_id: uuid.UUID) -> bool:
    return await session.scalar(select(LicenceKey.id).where(LicenceKey.listing_id == listing_id).limit(1)) is not None


async def of_order_line(session: AsyncSession, order_line_id: uuid.UUID) -> LicenceKey | None:
    return await session.scalar(select(LicenceKey).where(LicenceKey.order_line_id == order_line_id)
                                .execution_options(populate_existing=True))


async def free_key_id(session: AsyncSession, listing_id: uuid.UUID, *, skip_locked: bool) -> uuid.UUID | None:
    """The oldest free key of the listing, locked for this transaction (PostgreSQL).

    ``skip_locked``: pass over keys other transactions are handing out right now. Without
    it, wait for them: a buyer whose transaction rolls back frees its key again."""
    query = (select(LicenceKey.id)
             .where(LicenceKey.listing_id == listing_id, LicenceKey.order_line_id.is_(None))
             .order_by(LicenceKey.created_at, LicenceKey.id).limit(1)
             .with_for_update(skip_locked=skip_locked))
    return await session.scalar(query)


async def take(session: AsyncSession, key_id: uuid.UUID, *, order_line_id: uuid.UUID, at: datetime) -> bool:
    """Give the key to the order line if it is still free. False when it is not, or when the
    order line got another key meanwhile (the unique index; a savepoint keeps the
    caller's transaction usable)."""
    try:
        async with session.begin_nested():
            result = await session.execute(
                update(LicenceKey).where(LicenceKey.id == key_id, LicenceKey.order_line_id.is_(None))
                .values(order_line_id=order_line_id, assigned_at=at).returning(LicenceKey.id)
                .execution_options(synchronize_session=False))
            return result.first() is not None
    except IntegrityError:
        return False


async def key_of_order(session: AsyncSession, order_id: uuid.UUID, listing_id: uuid.UUID) -> str | None:
    """The key handed out to the order's line for the listing, if any."""
    return await session.scalar(
        select(LicenceKey.key).join(OrderLine, OrderLine.id == LicenceKey.order_line_id)
        .where(OrderLine.order_id == order_id, OrderLine.listing_id == listing_id)
        .order_by(OrderLine.position).limit(1))
