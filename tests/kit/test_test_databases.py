"""The PostgreSQL pass's test databases (tests/support/databases.py): a used clone is put back
exactly in the template's state, and one whose schema a test changed is not reused."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from tests.support.backends import PG_URL, asyncpg_dsn, pg_admin
from tests.support.databases import TemplateState

pytestmark = pytest.mark.postgres


@pytest.fixture
async def clone(database_template: str) -> object:
    name = f"mercato_r_{uuid.uuid4().hex[:12]}"
    await pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{database_template}"')
    connection = await asyncpg.connect(asyncpg_dsn(name))
    try:
        yield connection
    finally:
        await connection.close()
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _template_state(template: str) -> TemplateState:
    connection = await asyncpg.connect(asyncpg_dsn(template))
    try:
        return await TemplateState.read(connection)
    finally:
        await connection.close()


async def test_a_used_clone_is_put_back_in_the_template_s_state(database_template: str, clone: object) -> None:
    assert PG_URL
    connection: asyncpg.Connection = clone  # type: ignore[assignment]
    template = await _template_state(database_template)
    # what a test leaves behind: rows of its own, seeded rows changed or gone, sequences moved on
    await connection.execute("DELETE FROM role_grants")
    await connection.execute("UPDATE categories SET name = 'Renamed'")
    await connection.execute(
        "INSERT INTO outbox (id, type, source, subject, time, data) "
        "VALUES ($1, 'test.ping', 'tests', 's', now(), '{}')", uuid.uuid4())
    assert await TemplateState.read(connection) != template

    assert await template.restore(connection) is True
    assert await TemplateState.read(connection) == template
    # the outbox's sequence starts again where a fresh clone's does
    first = await connection.fetchval(
        "INSERT INTO outbox (id, type, source, subject, time, data) "
        "VALUES ($1, 'test.ping', 'tests', 's', now(), '{}') RETURNING sequence", uuid.uuid4())
    assert first == 1


async def test_a_clone_whose_schema_changed_is_not_reset(database_template: str, clone: object) -> None:
    connection: asyncpg.Connection = clone  # type: ignore[assignment]
    template = await _template_state(database_template)
    await connection.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY)")
    assert await template.restore(connection) is False
    assert await connection.fetchval("SELECT count(*) FROM pg_tables WHERE tablename = 'counter'") == 1
