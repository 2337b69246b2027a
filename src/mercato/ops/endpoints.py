"""Health, readiness and Prometheus metrics (outside /api/v1)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import JSONResponse, Response
from starlette.types import Scope

from mercato.access.dependencies import public
from mercato.kit.http import FastPath, register_fast_path
from mercato.kit.logging import log
from mercato.kit.metrics import REGISTRY
from mercato.kit.routing import TransactionalRoute

router = APIRouter(route_class=TransactionalRoute, tags=["operations"], dependencies=[public()])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "A dependency is down"}})
async def readyz(request: Request) -> JSONResponse:
    """Ready to serve: the database answers, and the broker when one is configured."""
    return await _readiness(request.app)


async def _readiness(app: Any) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        await app.state.runtime.db.ping()
        checks["database"] = "ok"
    except Exception as exc:  # report, never raise: this endpoint exists to say what is down
        log.warning("readiness: database down", error=str(exc))
        checks["database"] = "down"
    bus = getattr(app.state, "bus", None)
    if bus is not None and bus.settings.broker_url:
        try:
            await bus.ping()
            checks["broker"] = "ok"
        except Exception as exc:
            log.warning("readiness: broker down", error=str(exc))
            checks["broker"] = "down"
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
async def metrics() -> Response:
    """Prometheus metrics."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
