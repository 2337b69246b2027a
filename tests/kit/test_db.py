"""The data layer: SQLite configured as a real database, migrations on both databases."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text

from mercato.kit import migrate
from mercato.kit.db import Database
from mercato.models import Base, OutboxEvent
from tests.support.backends import admin_url, pg_admin


async def test_fifty_concurrent_read_modify_write_transactions_on_sqlite_lose_nothing(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'counter.db'}")
    try:
        async with db.transaction() as session:
            await session.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)"))
            await session.execute(text("INSERT INTO counter VALUES (1, 0)"))

        async def increment() -> None:
            async with db.transaction() as session:
                value = await session.scalar(text("SELECT value FROM counter WHERE id = 1"))
                await asyncio.sleep(0)  # let the others interleave: a lost update would show here
                await session.execute(text("UPDATE counter SET value = :v WHERE id = 1"), {"v": value + 1})

        await asyncio.gather(*(increment() for _ in range(50)))
        async with db.read_session() as session:
            assert await session.scalar(text("SELECT value FROM counter WHERE id = 1")) == 50
    finally:
        await db.dispose()


async def test_two_databases_objects_on_one_sqlite_file_also_serialise_writers(tmp_path: Path) -> None:
    """Two processes (here: two engines) share the file; BEGIN IMMEDIATE + busy timeout keep both safe."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    first, second = Database(url), Database(url)
    try:
        async with first.transaction() as session:
            await session.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)"))
            await session.execute(text("INSERT INTO counter VALUES (1, 0)"))

        async def increment(db: Database) -> None:
            async with db.transaction() as session:
                value = await session.scalar(text("SELECT value FROM counter WHERE id = 1"))
                await asyncio.sleep(0)
                await session.execute(text("UPDATE counter SET value = :v WHERE id = 1"), {"v": value + 1})

        await asyncio.gather(*(increment(first if i % 2 else second) for i in range(40)))
        async with first.read_session() as session:
            assert await session.scalar(text("SELECT value FROM counter WHERE id = 1")) == 40
    finally:
        await first.dispose()
        await second.dispose()


async def test_sqlite_runs_in_wal_mode(runtime) -> None:  # type: ignore[no-untyped-def]
    if not runtime.db.is_sqlite:
        pytest.skip("SQLite only")
    async with runtime.db.read_session() as session:
        assert (await session.scalar(text("PRAGMA journal_mode"))).lower() == "wal"


async def test_datetimes_come_back_aware_and_in_utc(runtime) -> None:  # type: ignore[no-untyped-def]
    at = datetime(2026, 3, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    event_id = uuid.uuid4()
    async with runtime.db.transaction() as session:
        session.add(OutboxEvent(id=event_id, type="user.updated", source="mercato/accounts", subject="s",
                                time=at, data={}))
    async with runtime.db.read_session() as session:
        stored = await session.scalar(select(OutboxEvent.time).where(OutboxEvent.id == event_id))
    assert stored == at and stored.tzinfo is not None and stored.utcoffset() == timedelta(0)
    assert stored.hour == 10


async def test_naive_datetimes_are_refused(runtime) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Exception, match="naive datetime"):
        async with runtime.db.transaction() as session:
            session.add(OutboxEvent(id=uuid.uuid4(), type="user.updated", source="x", subject="s",
                                    time=datetime(2026, 1, 1), data={}))
            await session.flush()


def _tables_after_migrating(url: str) -> set[str]:
    migrate.upgrade(url)

    async def read() -> set[str]:
        db = Database(url)
        try:
            async with db.writer.connect() as connection:
                return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
        finally:
            await db.dispose()

    return asyncio.run(read())


def test_migrations_from_empty_on_sqlite_create_every_model_table(tmp_path: Path) -> None:
    tables = _tables_after_migrating(f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}")
    assert set(Base.metadata.tables) <= tables


@pytest.mark.postgres
def test_migrations_from_empty_on_postgresql_create_every_model_table() -> None:
    name = f"mercato_mig_{uuid.uuid4().hex[:10]}"
    asyncio.run(pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        tables = _tables_after_migrating(admin_url(name))
        assert set(Base.metadata.tables) <= tables
    finally:
        asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_migrations_match_the_models(tmp_path: Path) -> None:
    """Alembic's autogenerate finds nothing to add: no model change without a migration."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from mercato.catalog.search.index import autogenerate_includes

    url = f"sqlite+aiosqlite:///{tmp_path / 'cmp.db'}"
    migrate.upgrade(url)

    async def diff() -> list:  # type: ignore[type-arg]
        db = Database(url)
        try:
            async with db.writer.connect() as connection:
                # the same options as migrations/env.py: the search index has no models on purpose
                return await connection.run_sync(lambda c: compare_metadata(MigrationContext.configure(
                    c, opts={"include_name": autogenerate_includes, "compare_type": True}), Base.metadata))
        finally:
            await db.dispose()

    assert asyncio.run(diff()) == []


def test_now_is_utc() -> None:
    from mercato.kit.clock import utcnow

    assert utcnow().tzinfo is UTC
