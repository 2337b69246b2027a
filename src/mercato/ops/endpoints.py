"""Health, readiness and Prometheus metrics (outside /api/v1)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import JSONResponse, Response
from starlette.types import Scope

from mercato.access.dependencies import public
from mercato.bus.metrics import BROKER_UP
from mercato.kit.http import FastPath, register_fast_path
from mercato.kit.logging import log
from mercato.kit.metrics import REGISTRY
from mercato.kit.migrate import schema_state
from mercato.ops import gauges
from mercato.platform.routing import TransactionalRoute

BROKER_CHECK_SECONDS = 2.0

router = APIRouter(route_class=TransactionalRoute, tags=["operations"], dependencies=[public()])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "This process cannot serve requests"}})
async def readyz(request: Request) -> JSONResponse:
    """Ready to serve requests: the database answers and its schema is this release's (or a
    later one's). The broker is not part of it: the API serves without one (the outbox keeps
    every event); its health is `mercato_broker_up` in /metrics."""
    return await _readiness(request.app)


async def _readiness(app: Any) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        applied = await app.state.runtime.db.schema_revisions()
        checks["database"] = "ok"
        checks["migrations"] = "ok" if schema_state(applied) != "pending" else "pending"
    except Exception as exc:  # report, never raise: this endpoint exists to say what is down
        log.warning("readiness: database down", error=str(exc))
        checks["database"] = "down"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse({"status": "ready" if ready else "not_ready", "checks": checks},
                        status_code=200 if ready else 503)


# Probes are answered before routing (kit/http.py, FastPath): orchestrators call them every few
# seconds, and matching ~160 routes in order cost many times the answer itself.
_ALIVE = JSONResponse({"status": "ok"})


async def _probe(scope: Scope, _headers: dict[str, str]) -> Response | None:
    if scope["path"] == "/healthz":
        return _ALIVE
    if scope["path"] == "/readyz":
        return await _readiness(scope["app"])
    return None


register_fast_path(FastPath(prefix="/healthz", template="/healthz", answer=_probe))
register_fast_path(FastPath(prefix="/readyz", template="/readyz", answer=_probe))


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus metrics."""
    bus = getattr(request.app.state, "bus", None)
    if bus is not None and bus.settings.broker_url:
        BROKER_UP.set(1 if await _broker_reachable(bus) else 0)
    await gauges.refresh(request.app.state.runtime.db, bus.registry if bus is not None else None)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


async def _broker_reachable(bus) -> bool:  # type: ignore[no-untyped-def]
    try:
        async with asyncio.timeout(BROKER_CHECK_SECONDS):
            await bus.ping()
    except Exception as exc:
        log.warning("broker unreachable", error=f"{type(exc).__name__}: {exc}")
        return False
    return True
