"""F9: a database that does not answer (a table locked by another session) gets 503 with
``Retry-After`` at the budget, and the next request after it lets go succeeds (QUALITY F9).

Two budgets guard a request: the database's statement timeout (``kit/db.py``) and the
request budget (``kit/budget.py``) for waits the database does not see."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from mercato.app.runtime import Runtime
from mercato.config import Settings
from tests.kit.support import budget_of
from tests.support.actors import Actor

BUDGETS = {
    # the database cancels the statement (lock waits included) before the request budget
    "statement-timeout": {"database_statement_timeout_seconds": 1.0},
    # no statement timeout: the request budget (tightened to this below) answers
    "request-budget": {"database_statement_timeout_seconds": 0.0},
}
REQUEST_BUDGET_SECONDS = 1.5
EXPECTED_CODES = {"statement-timeout": "database_unavailable", "request-budget": "request_budget_exceeded"}


@pytest.fixture(params=list(BUDGETS))
def budget(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def settings(settings: Settings, budget: str) -> Settings:
    return settings.model_copy(update=BUDGETS[budget])


@asynccontextmanager
async def _tokens_table_locked(runtime: Runtime) -> AsyncIterator[None]:
    """Another session holds the lock every write of ``api_tokens`` needs, until the block ends.

    PostgreSQL: a table lock from another connection. SQLite: the store's write transaction
    (writes take turns on one connection; another process's lock could starve while the
    store's own writers hand it to each other)."""
    if runtime.db.is_sqlite:
        async with runtime.db.transaction() as session:
            await session.execute(text("DELETE FROM api_tokens WHERE name = 'none'"))
            yield
        return
    engine = create_async_engine(runtime.db.url)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("LOCK TABLE api_tokens IN ACCESS EXCLUSIVE MODE"))
            try:
                yield
            finally:
                await connection.rollback()
    finally:
        await engine.dispose()


@pytest.mark.slow
async def test_a_locked_table_answers_503_at_the_budget_and_recovers(
        budget: str, app: Any, client: httpx.AsyncClient, user: Actor, runtime: Runtime) -> None:
    if budget == "statement-timeout" and runtime.db.is_sqlite:
        pytest.skip("SQLite has no statement timeout; its requests are bounded by the request budget")
    if budget == "request-budget":
        budget_of(app).seconds = REQUEST_BUDGET_SECONDS
    async with _tokens_table_locked(runtime):
        blocked = await asyncio.wait_for(
            client.post("/api/v1/me/tokens", json={"name": "while-locked"}, headers=user.headers), timeout=60)
        assert blocked.status_code == 503, blocked.text
        assert blocked.headers["retry-after"].isdigit()
        assert blocked.json()["code"] == EXPECTED_CODES[budget]

    budget_of(app).seconds = 30.0  # the next request, after the lock, succeeds
    created = await client.post("/api/v1/me/tokens", json={"name": "after"}, headers=user.headers)
    assert created.status_code == 201, created.text
    listed = (await client.get("/api/v1/me/tokens", headers=user.headers)).json()
    names = [token["name"] for token in listed["items"]]
    assert names == ["after"], "the refused write changed nothing"

