"""Readiness says whether this process can serve requests (its database answers and has this
release's schema); the broker's health is a metric, since the API serves without it."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from sqlalchemy import text

from mercato.app import create_app
from mercato.app.runtime import Runtime
from mercato.config import Settings


def _broker_up(metrics: str) -> float:
    found = re.search(r"^mercato_broker_up (\S+)$", metrics, re.MULTILINE)
    assert found, "mercato_broker_up is missing"
    return float(found.group(1))


async def _serving(settings: Settings):  # type: ignore[no-untyped-def]
    runtime = Runtime.from_settings(settings)
    app = create_app(runtime=runtime)
    return runtime, app


async def test_an_unreachable_broker_keeps_the_process_ready_and_shows_in_metrics(settings: Settings) -> None:
    # Port 9 (discard) on loopback: nothing listens there.
    broken = settings.model_copy(update={"broker_url": "redis://127.0.0.1:9/0"})
    runtime, app = await _serving(broken)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://mercato.test") as client:
                ready = await client.get("/readyz")
                assert ready.status_code == 200, ready.text
                assert ready.json()["checks"] == {"database": "ok", "migrations": "ok"}
                assert _broker_up((await client.get("/metrics")).text) == 0
                registered = await client.post("/api/v1/auth/register", json={
                    "email": "still-open@example.org", "password": "a perfectly fine test password"})
                assert registered.status_code == 201
    finally:
        await runtime.close()


async def test_readiness_checks_the_database_and_its_schema(client: httpx.AsyncClient) -> None:
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "migrations": "ok"}


async def test_a_database_behind_this_release_is_not_ready(client: httpx.AsyncClient, runtime: Runtime) -> None:
    from mercato.kit.migrate import known_revisions

    heads, known = known_revisions()
    older = min(known - heads)
    async with runtime.db.transaction() as session:
        await session.execute(text("UPDATE alembic_version SET version_num = :older"), {"older": older})
    ready = await client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["migrations"] == "pending"
    async with runtime.db.transaction() as session:  # a later release's schema still serves
        await session.execute(text("UPDATE alembic_version SET version_num = 'from-a-later-release'"))
    assert (await client.get("/readyz")).status_code == 200


@pytest.mark.nats
async def test_a_nats_stream_that_is_gone_shows_as_broker_down(settings: Settings) -> None:
    """Connected to NATS is not enough: without its stream the bus is dead (issue 11, item 13)."""
    import nats

    from tests.support.backends import NATS_URL

    assert NATS_URL
    queue = f"mercato-ready-{uuid.uuid4().hex[:8]}"
    runtime, app = await _serving(settings.model_copy(update={"broker_url": NATS_URL, "bus_queue": queue}))
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://mercato.test") as client:
                assert _broker_up((await client.get("/metrics")).text) == 1
                connection = await nats.connect(NATS_URL)
                try:
                    await connection.jetstream().delete_stream(queue)
                finally:
                    await connection.close()
                assert _broker_up((await client.get("/metrics")).text) == 0
                assert (await client.get("/readyz")).status_code == 200
    finally:
        await runtime.close()
