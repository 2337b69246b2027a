"""Database engines and sessions for both ways to run.

SQLite (embedded default) is configured as a real database: WAL, a busy timeout,
``BEGIN IMMEDIATE`` for every write transaction, one writer connection (writes queue in
the pool instead of failing with "database is locked") and a separate engine for reads.
With default settings SQLAlchemy + aiosqlite silently loses concurrent read-modify-write
updates; ``tests/kit/test_db.py`` proves this configuration does not.

PostgreSQL goes through asyncpg; an optional read replica serves the read engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

SQLITE_BUSY_TIMEOUT_MS = 30_000


def _configure_sqlite(engine: AsyncEngine, *, writer: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's implicit
        # transactions would otherwise start DEFERRED ones).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")


def _create_engine(url: str, *, writer: bool) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(
            url,
            poolclass=AsyncAdaptedQueuePool,
            pool_size=1 if writer else 4,
            max_overflow=0,
            pool_timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        _configure_sqlite(engine, writer=writer)
        return engine
    # No pre-ping: it is a round trip per checkout. A connection the server dropped (a restart)
    # fails its first statement instead; SQLAlchemy then invalidates the whole pool and the
    # request answers 503 with Retry-After (kit/http.py), and the next one connects afresh.
    return create_async_engine(url, pool_size=10 if writer else 10, max_overflow=10, pool_pre_ping=False)


class Database:
    """The writer and reader engines of one store, with session factories."""

    def __init__(self, url: str, *, read_url: str | None = None) -> None:
        self.url = url
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        self.writer = _create_engine(url, writer=True)
        if self.is_sqlite:
            self.reader = _create_engine(url, writer=False)
        elif read_url:
            self.reader = _create_engine(read_url, writer=False)
        else:
            self.reader = self.writer
        # Where evictions recorded in a transaction (kit/cache.py ``evict_after_commit``) go once
        # it committed; the runtime sets it to the store's cache.
        self.cache: Any = None
        self._write_sessions = async_sessionmaker(self.writer, expire_on_commit=False, autoflush=True)
        # PostgreSQL reads without BEGIN/ROLLBACK: at READ COMMITTED every statement sees its own
        # snapshot anyway, so autocommit changes no answer and saves two round trips a session.
        # (SQLite keeps its read transaction: one snapshot for a session's statements, at no
        # network cost.)
        read_bind = self.reader if self.is_sqlite else self.reader.execution_options(isolation_level="AUTOCOMMIT")
        self._read_sessions = async_sessionmaker(read_bind, expire_on_commit=False, autoflush=False)

    def write_session(self) -> AsyncSession:
        return self._write_sessions()

    def read_session(self) -> AsyncSession:
        return self._read_sessions()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write transaction for code outside a request (CLI, workers, sweeps). Cache
        evictions it recorded are applied once it committed (and dropped if it rolled back),
        as the request route does for its own transaction."""
        from mercato.kit.cache import EVICTIONS, apply_evictions

        async with self.write_session() as session:
            try:
                async with session.begin():
                    yield session
            except BaseException:
                session.info.pop(EVICTIONS, None)
                raise
            if self.cache is not None:
                await apply_evictions(session, self.cache)

    async def ping(self) -> None:
        async with self.reader.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()


# --- helpers for repositories ------------------------------------------------------------------

async def insert_unless_conflict(session: AsyncSession, row: object) -> bool:
    """Insert ``row``; False when a unique index refuses it (a race lost to a transaction that
    committed after the caller's check). A savepoint keeps the caller's transaction usable."""
    from sqlalchemy.exc import IntegrityError

    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return False
    return True


async def refresh_if_held(session: AsyncSession, model: type, row_id: object) -> None:
    """After a guarded ``UPDATE`` changed a row: reload the object for it this session holds,
    so the caller reads the new state (the update ran with ``synchronize_session=False``)."""
    sync = session.sync_session
    held = sync.identity_map.get(sync.identity_key(model, row_id))
    if held is not None:
        await session.refresh(held)
