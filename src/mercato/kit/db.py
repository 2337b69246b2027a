"""Database engines and sessions for both ways to run.

SQLite (embedded default) is configured as a real database: WAL, a busy timeout,
``BEGIN IMMEDIATE`` for every write transaction, one writer connection (writes queue in
the pool instead of failing with "database is locked") and a separate engine for reads.
With default settings SQLAlchemy + aiosqlite silently loses concurrent read-modify-write
updates; ``tests/kit/test_db.py`` proves this configuration does not.

PostgreSQL goes through asyncpg; an optional read replica serves the read engine.

A database that cannot serve (down, restarting, shutting down, refusing connections, a
statement past its timeout) surfaces in one shape, :class:`DatabaseUnavailable` (503 with
``Retry-After``), whatever the driver raised: an ``OSError`` while connecting, a SQLSTATE
of class 08 or 57P01/57P03 on a live session, a connection found closed. The pool drops
the broken connections, so the first request after a restart gets a fresh one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from mercato.kit.cache import EVICTIONS, apply_evictions
from mercato.kit.errors import ServiceUnavailable

SQLITE_BUSY_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_SECONDS = 5.0
# Connections each PostgreSQL engine keeps open (the most a process uses at once).
POOL_SIZE = 20
RETRY_AFTER_SECONDS = 2
# SQLSTATEs that say "this server cannot serve the session now", not "this statement is wrong":
# class 08 (connection exception), 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot
# connect now (starting up, shutting down), 53300 too many connections.
LOST_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")
# ... and the statement ran out of time (its session is still fine): 57014 statement timeout
# (or cancelled), 55P03 lock timeout.
TIMED_OUT_SQLSTATES = ("57014", "55P03")
SQLITE_BUSY = ("SQLITE_BUSY", "SQLITE_LOCKED")  # the busy timeout passed: another writer holds the lock


class DatabaseUnavailable(ServiceUnavailable):
    """The database cannot serve now; the same request later can succeed."""

    code, title = "database_unavailable", "The database is unavailable"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or "The database is unavailable; try again shortly.",
                         headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and what it wraps (SQLAlchemy's ``orig``, then causes)."""
    current: BaseException | None = error
    for _ in range(6):
        if current is None:
            return
        yield current
        current = getattr(current, "orig", None) or current.__cause__


def _sqlstate(error: BaseException) -> str:
    state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    return state if isinstance(state, str) else ""


def _timed_out(error: BaseException) -> bool:
    return any(_sqlstate(e).startswith(TIMED_OUT_SQLSTATES) or getattr(e, "sqlite_errorname", None) in SQLITE_BUSY
               for e in _chain(error))


def is_database_unavailable(error: BaseException) -> bool:
    """Whether ``error`` (or what it wraps) says the database cannot serve now."""
    for current in _chain(error):
        if isinstance(current, DatabaseUnavailable) or getattr(current, "connection_invalidated", False):
            return True
        if _sqlstate(current).startswith(LOST_SQLSTATES):
            return True
        if isinstance(current, OSError):  # refused, reset, unreachable, timed out (TimeoutError)
            return True
        if type(current).__module__.startswith("asyncpg") and "closed" in str(current):
            return True  # asyncpg's InterfaceError "connection is closed" / "was closed in the middle"
    return _timed_out(error)


def _translate_unavailable(engine: AsyncEngine) -> None:
    """Raise :class:`DatabaseUnavailable` for every "cannot serve now" shape, and let the pool
    drop the connection it happened on (unless only the statement timed out)."""

    @event.listens_for(engine.sync_engine, "handle_error")
    def on_error(context: ExceptionContext) -> BaseException | None:
        error = context.original_exception
        if not isinstance(error, Exception):  # a cancellation (request budget) stays one
            return None
        if not (context.is_disconnect or is_database_unavailable(error)):
            return None
        if _timed_out(error):
            return DatabaseUnavailable("The database did not answer in time (a statement waited too long); "
                                       "nothing was changed, try again shortly.")
        context.is_disconnect = True
        if context.is_pre_ping:  # the pool reconnects by itself
            return None
        return DatabaseUnavailable()

    @event.listens_for(engine.sync_engine, "do_connect")
    def connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        # Errors while connecting (an OSError above all) never reach "handle_error".
        try:
            return dialect.loaded_dbapi.connect(*cargs, **cparams)
        except Exception as exc:
            if is_database_unavailable(exc):
                raise DatabaseUnavailable() from exc
            raise


def _configure_sqlite(engine: AsyncEngine, *, writer: bool, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's implicit
        # transactions would otherwise start DEFERRED ones).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")


def _create_engine(url: str, *, writer: bool, statement_timeout: float) -> AsyncEngine:
    """``statement_timeout`` (seconds, 0 for none) bounds each statement on PostgreSQL: the
    server cancels it (lock waits included) and asyncpg gives up on a database that does not
    answer at all a little later. SQLite keeps its 30 s wait for the write lock: its writers
    queue for one connection, and a burst (many buyers at once) must queue, not fail; requests
    are bounded by their budget (kit/budget.py)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        busy_timeout_ms = SQLITE_BUSY_TIMEOUT_MS
        engine = create_async_engine(
            url,
            poolclass=AsyncAdaptedQueuePool,
            pool_size=1 if writer else 4,
            max_overflow=0,
            pool_timeout=busy_timeout_ms / 1000,
            connect_args={"timeout": busy_timeout_ms / 1000},
        )
        _configure_sqlite(engine, writer=writer, busy_timeout_ms=busy_timeout_ms)
        _translate_unavailable(engine)
        return engine
    connect_args: dict[str, Any] = {"timeout": CONNECT_TIMEOUT_SECONDS}
    if statement_timeout > 0:
        connect_args["server_settings"] = {"statement_timeout": str(int(statement_timeout * 1000))}
        connect_args["command_timeout"] = statement_timeout + 2
    # No pre-ping: it is a round trip per checkout. A connection the server dropped (a restart)
    # fails its first statement instead; it is translated to DatabaseUnavailable (503 with
    # Retry-After), the pool drops it, and the next request connects afresh. The wait for a
    # pooled connection keeps its 30 s: requests are bounded by their budget, and background
    # work (sweeps, deliveries) may queue behind a burst. No overflow: an overflow connection is
    # closed when it is returned, so a steady load above the pool's size opened and closed a
    # connection (TCP, start-up, TLS negotiation) per request — a third of a cold read's CPU.
    engine = create_async_engine(url, pool_size=POOL_SIZE, max_overflow=0, pool_pre_ping=False,
                                 connect_args=connect_args)
    _translate_unavailable(engine)
    return engine


class Database:
    """The writer and reader engines of one store, with session factories."""

    def __init__(self, url: str, *, read_url: str | None = None, statement_timeout: float = 0) -> None:
        self.url = url
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        self.writer = _create_engine(url, writer=True, statement_timeout=statement_timeout)
        if self.is_sqlite:
            self.reader = _create_engine(url, writer=False, statement_timeout=statement_timeout)
        elif read_url:
            self.reader = _create_engine(read_url, writer=False, statement_timeout=statement_timeout)
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

    async def schema_revisions(self) -> frozenset[str]:
        """The migration revisions applied to this database (Alembic's version table)."""
        async with self.reader.connect() as connection:
            rows = await connection.execute(text("SELECT version_num FROM alembic_version"))
            return frozenset(str(row[0]) for row in rows)

    async def dispose(self) -> None:
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()


# --- helpers for repositories ------------------------------------------------------------------

async def insert_unless_conflict(session: AsyncSession, row: object) -> bool:
    """Insert ``row``; False when a unique index refuses it (a race lost to a transaction that
    committed after the caller's check). A savepoint keeps the caller's transaction usable."""
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
