"""The store's foreground (kit/foreground.py): background work that can wait gives way to the
requests in flight (a buyer's checkout and its ``?wait=`` for the saga), never to streams, and
never for longer than its bound."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
from starlette.types import Receive, Scope, Send

from mercato.app import create_app
from mercato.app.runtime import Runtime
from mercato.kit.budget import Exempt, RequestBudget
from mercato.kit.foreground import Foreground


async def test_quiet_returns_at_once_when_no_request_is_in_flight() -> None:
    assert await Foreground().quiet(at_most=0) is True


async def test_quiet_waits_for_the_last_request_in_flight() -> None:
    foreground = Foreground()
    gave_way = asyncio.Event()

    async def background() -> None:
        assert await foreground.quiet(at_most=30) is True
        gave_way.set()

    with foreground.serving():
        waiter = asyncio.create_task(background())
        with foreground.serving():
            await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert not gave_way.is_set(), "one request is still in flight"
    await asyncio.wait_for(waiter, 5)
    assert gave_way.is_set()
    assert foreground.in_flight == 0


async def test_quiet_is_bounded_for_a_store_that_is_never_idle() -> None:
    foreground = Foreground()
    with foreground.serving():
        assert await foreground.quiet(at_most=0.01) is False
    assert foreground.in_flight == 0


async def test_a_request_is_counted_while_it_is_answered(runtime: Runtime) -> None:
    app = create_app(runtime=runtime)
    counted: list[int] = []
    original = runtime.db.read_session

    def read_session(*args: Any, **kwargs: Any) -> Any:  # the handler's own read, mid-request
        counted.append(runtime.foreground.in_flight)
        return original(*args, **kwargs)

    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://mercato.test") as http:
        runtime.db.read_session = read_session  # type: ignore[method-assign]
        try:
            listed = await http.get("/api/v1/listings")
        finally:
            runtime.db.read_session = original  # type: ignore[method-assign]
        assert listed.status_code == 200, listed.text
    assert counted and set(counted) == {1}, "the listing request is in flight while its handler reads"
    assert runtime.foreground.in_flight == 0, "and no longer once answered"


async def test_a_stream_is_not_counted() -> None:
    foreground = Foreground()
    during: dict[str, int] = {}

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        during[scope["path"]] = foreground.in_flight
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    budget = RequestBudget(inner, seconds=5, foreground=lambda scope: foreground,
                           exempt=[Exempt("GET", re.compile(r"^/stream$"))])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=budget), base_url="http://mercato.test") as http:
        await http.get("/stream")
        await http.get("/page")
    assert during == {"/stream": 0, "/page": 1}
