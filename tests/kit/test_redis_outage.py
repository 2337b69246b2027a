"""F8: Redis down (QUALITY F8). The store's Redis is a private server this test stops.

A cache is an optimisation: with it gone, reads are served from the database and a
committed edit answers 200 (its eviction after the commit fails quietly). Sign-in limits
fail closed (503 with Retry-After, never an uncounted guess); the other limits (sign-up,
refresh) and the live stream keep working. When Redis returns, everything works again."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from mercato.config import Settings
from tests.catalog.support import V1, Shop
from tests.support.actors import DEFAULT_PASSWORD, Actor, Actors
from tests.support.private_servers import PrivateRedis, private_redis


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    with private_redis() as server:
        yield server


@pytest.fixture
def settings(settings: Settings, redis_server: PrivateRedis) -> Settings:
    return settings.model_copy(update={"redis_url": redis_server.url})


async def _until_ok(call, *, timeout: float = 30) -> httpx.Response:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        response: httpx.Response = await call()
        if response.status_code < 400 or asyncio.get_running_loop().time() > deadline:
            return response
        await asyncio.sleep(0.1)


@pytest.mark.slow
@pytest.mark.redis
async def test_with_redis_down_reads_and_edits_are_served_and_sign_in_fails_closed(
        redis_server: PrivateRedis, client: httpx.AsyncClient, actors: Actors, user: Actor) -> None:
    shop = await Shop.open(client, actors)
    listing = await shop.published()
    detail = f"{V1}/listings/{listing['slug']}"
    assert (await client.get(detail)).status_code == 200  # cached in Redis now

    redis_server.stop(kill=True)

    read = await client.get(detail)
    assert read.status_code == 200, read.text
    edited = await client.patch(detail, headers=shop.developer.headers, json={"summary": "Edited without Redis."})
    assert edited.status_code == 200, edited.text
    assert (await client.get(detail)).json()["summary"] == "Edited without Redis."

    login = await client.post(f"{V1}/auth/login", json={"email": user.email, "password": DEFAULT_PASSWORD})
    assert login.status_code == 503, login.text
    assert login.json()["code"] == "rate_limit_unavailable" and login.headers["retry-after"].isdigit()
    # The limits that only throttle fail open.
    registered = await client.post(f"{V1}/auth/register", json={"email": "while-down@example.org",
                                                                "password": DEFAULT_PASSWORD})
    assert registered.status_code == 201, registered.text
    refreshed = await client.post(f"{V1}/auth/refresh", json={"refresh_token": user.refresh_token})
    assert refreshed.status_code == 200, refreshed.text
    # The live stream replays from the event log and ends (the client reconnects) instead of failing.
    stream = await client.get(f"{V1}/events/stream", headers=user.headers)
    assert stream.status_code == 200, stream.text

    redis_server.start()  # empty, as after a restart

    login = await _until_ok(lambda: client.post(f"{V1}/auth/login", json={"email": user.email,
                                                                          "password": DEFAULT_PASSWORD}))
    assert login.status_code == 200, login.text
    assert (await client.get(detail)).status_code == 200
    edited = await client.patch(detail, headers=shop.developer.headers, json={"summary": "Redis is back."})
    assert edited.status_code == 200, edited.text
    assert (await client.get(detail)).json()["summary"] == "Redis is back."
