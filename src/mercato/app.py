"""create_app(): routers, middleware, error handling and the lifespan of one store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from mercato import __version__
from mercato.access import endpoints as access_endpoints
from mercato.access.dependencies import api_routes, route_policy
from mercato.accounts import endpoints as accounts_endpoints
from mercato.audit import endpoints as audit_endpoints
from mercato.config import Settings, load_settings
from mercato.kit.errors import ProblemModel
from mercato.kit.http import BodyPolicy, RequestMiddleware, install_error_handlers
from mercato.kit.logging import configure_logging
from mercato.ops import endpoints as ops_endpoints
from mercato.publishers import endpoints as publishers_endpoints
from mercato.runtime import Runtime

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    settings = settings or (runtime.settings if runtime else load_settings())
    configure_logging(level=settings.log_level, json=settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        app.state.runtime = runtime or Runtime.from_settings(settings)
        try:
            yield
        finally:
            if owned:
                await app.state.runtime.close()

    app = FastAPI(
        title="Mercato", version=__version__, lifespan=lifespan,
        openapi_url=f"{API_PREFIX}/openapi.json", docs_url="/api/docs", redoc_url=None,
        description="The HTTP API of a Mercato marketplace. Errors are RFC 9457 problem details with a `code`.",
        responses={400: {"model": ProblemModel, "description": "Malformed request"},
                   422: {"model": ProblemModel, "description": "Invalid request"}},
    )
    if runtime is not None:
        app.state.runtime = runtime
    install_error_handlers(app)
    app.add_middleware(RequestMiddleware, body_policy=BodyPolicy(default_max_bytes=settings.max_body_bytes))

    for module in (accounts_endpoints, access_endpoints, publishers_endpoints, audit_endpoints):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(accounts_endpoints.admin_router, prefix=API_PREFIX)
    app.include_router(ops_endpoints.router)
    # Full path templates (with prefixes) of every route, for metrics labels.
    app.state.route_templates = {id(route): path for path, route in api_routes(app)}
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with each operation's permission as ``x-permission``."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    for path, route in api_routes(app):
        if not route.include_in_schema:
            continue
        policy = route_policy(route)
        for method in route.methods:
            operation = schema.get("paths", {}).get(path, {}).get(method.lower())
            if operation is not None:
                operation["x-permission"] = policy
                if policy and policy != "public":
                    operation.setdefault("responses", {}).setdefault(
                        "401", {"description": "Missing or invalid credentials",
                                "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemModel"}}}})
                if policy not in (None, "public", "authenticated"):
                    operation["responses"].setdefault(
                        "403", {"description": f"Needs {policy}",
                                "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemModel"}}}})
    app.openapi_schema = schema
    return schema
