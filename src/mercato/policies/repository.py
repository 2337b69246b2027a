"""Every query on ``store_settings``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.models.policies import StoreSetting

# The pg_advisory_xact_lock key of settings writers (a constant only this module takes).
_WRITERS_LOCK = int.from_bytes(b"policies", "big", signed=True)


def _dialect(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind is not None else "sqlite"


async def stored(session: AsyncSession) -> list[StoreSetting]:
    """Every stored row (at most one per policy), read as the database has them now."""
    return list(await session.scalars(select(StoreSetting).order_by(StoreSetting.key)
                                      .execution_options(populate_existing=True)))


async def stored_values(session: AsyncSession) -> dict[str, Any]:
    """Only the stored values: the hot read path (no ORM objects)."""
    rows = await session.execute(select(StoreSetting.key, StoreSetting.value))
    return {key: value for key, value in rows}


async def lock_writers(session: AsyncSession) -> None:
    """Serialise settings changes until the caller's transaction ends, so each change reads the
    values the previous one wrote (exact before/after, rules across policies hold). PostgreSQL:
    a transaction-level advisory lock; SQLite: write transactions already run one at a time
    (``BEGIN IMMEDIATE`` on the single writer connection)."""
    if _dialect(session) == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _WRITERS_LOCK})


async def put(session: AsyncSession, *, key: str, value: Any, at: datetime, by: uuid.UUID | None) -> None:
    """Insert or replace one policy's row (one statement: concurrent first writes of a key
    cannot collide on the primary key)."""
    insert = (postgresql if _dialect(session) == "postgresql" else sqlite).insert(StoreSetting).values(
        key=key, value=value, updated_at=at, updated_by=by)
    await session.execute(insert.on_conflict_do_update(index_elements=[StoreSetting.key], set_={
        "value": insert.excluded.value, "updated_at": insert.excluded.updated_at,
        "updated_by": insert.excluded.updated_by}))
