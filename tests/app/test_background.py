"""Work a store does beside serving (``create_app(background=…)``; ``serve --demo`` loads its
demo so): it runs on the app's runtime once the bus runs, a failure leaves the store serving,
and work still running at stop is cancelled within the stop's bound."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from mercato.app import create_app, factory
from mercato.app.runtime import Runtime
from mercato.bus.service import Bus


async def test_background_work_runs_on_the_app_s_runtime_and_is_cancelled_at_stop(runtime: Runtime) -> None:
    seen: list[tuple[Runtime, bool]] = []
    cancelled = asyncio.Event()

    async def work(rt: Runtime) -> None:
        seen.append((rt, isinstance(app.state.bus, Bus)))
        try:
            await asyncio.Event().wait()  # until the store stops
        except asyncio.CancelledError:
            cancelled.set()
            raise

    app = create_app(runtime=runtime, background=[work])
    async with app.router.lifespan_context(app):
        await asyncio.sleep(0)  # the work's first step
        assert seen == [(runtime, True)]
        assert not cancelled.is_set()
    assert cancelled.is_set()


async def test_failing_background_work_is_logged_and_the_store_goes_on_serving(
        runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    failed = asyncio.Event()
    logged: list[tuple[str, str, dict[str, object]]] = []

    class Recorder:
        def __getattr__(self, level: str):  # type: ignore[no-untyped-def]
            return lambda event, **fields: logged.append((level, event, fields))

    monkeypatch.setattr(factory, "log", Recorder())

    async def broken(rt: Runtime) -> None:
        failed.set()
        raise RuntimeError("the demo could not be read")

    app = create_app(runtime=runtime, background=[broken])
    async with app.router.lifespan_context(app):
        await failed.wait()
        await asyncio.sleep(0)  # its task ends
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mercato.test") as http:
            assert (await http.get("/readyz")).status_code == 200
    assert logged == [("exception", "background work failed", {"work": "broken"})]
