"""With its broker unreachable, an API process keeps answering and says so in /readyz."""

from __future__ import annotations

import httpx

from mercato.app import create_app
from mercato.config import Settings
from mercato.runtime import Runtime


async def test_an_unreachable_broker_fails_readiness_but_not_the_api(settings: Settings) -> None:
    # Port 9 (discard) on loopback: nothing listens there.
    broken = settings.model_copy(update={"broker_url": "redis://127.0.0.1:9/0"})
    runtime = Runtime.from_settings(broken)
    app = create_app(runtime=runtime)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://mercato.test") as client:
                ready = await client.get("/readyz")
                assert ready.status_code == 503
                assert ready.json()["checks"] == {"database": "ok", "broker": "down"}
                registered = await client.post("/api/v1/auth/register", json={
                    "email": "still-open@example.org", "password": "a perfectly fine test password"})
                assert registered.status_code == 201
    finally:
        await runtime.close()


async def test_readiness_without_a_broker_checks_the_database(client: httpx.AsyncClient) -> None:
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok"}
