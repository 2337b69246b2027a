"""Health, readiness and Prometheus metrics (outside /api/v1)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import JSONResponse, Response

from mercato.access.dependencies import public
from mercato.kit.logging import log
from mercato.kit.metrics import REGISTRY
from mercato.kit.routing import TransactionalRoute, get_runtime

router = APIRouter(route_class=TransactionalRoute, tags=["operations"], dependencies=[public()])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "A dependency is down"}})
async def readyz(request: Request) -> JSONResponse:
    """Ready to serve: the database answers, and the broker when one is configured."""
    checks: dict[str, str] = {}
    try:
        await get_runtime(request).db.ping()
        checks["database"] = "ok"
    except Exception as exc:  # report, never raise: this endpoint exists to say what is down
        log.warning("readiness: database down", error=str(exc))
        checks["database"] = "down"
    bus = getattr(request.app.state, "bus", None)
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


@router.get("/metrics", response_class=Response)
async def metrics() -> Response:
    """Prometheus metrics."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
