"""The backends the suite runs on, from the environment (see ``tests/conftest.py``), and
PostgreSQL databases made and dropped by hand for tests that need one outside the
per-test ``database_url`` fixture.

- ``MERCATO_TEST_DATABASE_URL``: a PostgreSQL server URL (any database on it). Unset: SQLite files.
- ``MERCATO_TEST_REDIS_URL``: Redis; ``MERCATO_TEST_AMQP_URL`` RabbitMQ; ``MERCATO_TEST_NATS_URL`` NATS.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bench.servers import asyncpg_dsn as plain_dsn

PG_URL = os.environ.get("MERCATO_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("MERCATO_TEST_REDIS_URL")
AMQP_URL = os.environ.get("MERCATO_TEST_AMQP_URL")
NATS_URL = os.environ.get("MERCATO_TEST_NATS_URL")


def admin_url(database: str) -> str:
    """The URL of ``database`` on the PostgreSQL server of ``MERCATO_TEST_DATABASE_URL``."""
    assert PG_URL
    return make_url(PG_URL).set(database=database).render_as_string(hide_password=False)


def asyncpg_dsn(database: str) -> str:
    """The same URL as :func:`admin_url`, for asyncpg itself."""
    return plain_dsn(admin_url(database))


async def pg_admin(statement: str) -> None:
    """Run ``statement`` (CREATE/DROP DATABASE) outside a transaction on the server's ``postgres`` database."""
    engine = create_async_engine(admin_url("postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@contextmanager
def fresh_database(template: str, directory: Path) -> Iterator[str]:
    """A migrated database of its own, like the ``database_url`` fixture (which is per test)."""
    if PG_URL:
        name = f"mercato_saga_{uuid.uuid4().hex[:12]}"
        asyncio.run(pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        try:
            yield admin_url(name)
        finally:
            asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    else:
        target = directory / "mercato.db"
        shutil.copyfile(template, target)
        yield f"sqlite+aiosqlite:///{target}"
