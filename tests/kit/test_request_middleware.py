"""The shared request middleware's cheap paths: probes answered before routing, the access
log's modes, request ids."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from mercato.app import create_app
from mercato.app.runtime import Runtime
from mercato.kit import http


@pytest.mark.own_app
async def test_probes_are_answered_before_routing(app: FastAPI, client: httpx.AsyncClient) -> None:
    app.router.routes.clear()  # anything routed now answers 404
    assert (await client.get("/api/v1/categories")).status_code == 404
    alive = await client.get("/healthz")
    assert (alive.status_code, alive.json()) == (200, {"status": "ok"})
    assert alive.headers["x-request-id"]
    ready = await client.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready",
                                                       "checks": {"database": "ok", "migrations": "ok"}})


async def test_readiness_before_routing_says_when_the_database_is_down(
        runtime: Runtime, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    async def down() -> None:
        raise ConnectionRefusedError("no database")

    monkeypatch.setattr(runtime.db, "schema_revisions", down)  # what readiness reads
    ready = await client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"] == {"database": "down"}


class _Recorder:
    """Stands in for the structured logger: keeps (path, status) of each access log line."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, int]] = []

    def info(self, event: str, **fields: object) -> None:
        if event == "request":
            self.lines.append((str(fields["path"]), int(fields["status"])))  # type: ignore[call-overload]


@pytest.fixture
def access_log(monkeypatch: pytest.MonkeyPatch) -> _Recorder:
    recorder = _Recorder()
    monkeypatch.setattr(http, "log", recorder)
    return recorder


async def test_by_default_the_access_log_keeps_only_problems(client: httpx.AsyncClient,
                                                             access_log: _Recorder) -> None:
    assert (await client.get("/api/v1/categories")).status_code == 200
    assert (await client.get("/api/v1/listings/no-such-listing")).status_code == 404
    assert access_log.lines == [("/api/v1/listings/no-such-listing", 404)]


@pytest.mark.parametrize("mode", ["all", "off"])
async def test_the_access_log_mode_is_a_setting(runtime: Runtime, mode: str, access_log: _Recorder) -> None:
    runtime.settings.access_log = mode  # type: ignore[assignment]
    application = create_app(runtime=runtime)
    async with application.router.lifespan_context(application), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://mercato.test") as client:
        assert (await client.get("/api/v1/categories")).status_code == 200
        assert (await client.get("/api/v1/listings/no-such-listing")).status_code == 404
    expected = [("/api/v1/categories", 200), ("/api/v1/listings/no-such-listing", 404)] if mode == "all" else []
    assert access_log.lines == expected


async def test_request_ids_are_unique_and_an_offered_one_is_kept(client: httpx.AsyncClient) -> None:
    ids = {(await client.get("/healthz")).headers["x-request-id"] for _ in range(20)}
    assert len(ids) == 20
    kept = await client.get("/healthz", headers={"X-Request-Id": "trace-42"})
    assert kept.headers["x-request-id"] == "trace-42"
