"""create_app(): routers, middleware, error handling and the lifespan of one store."""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.routing import compile_path
from starlette.types import Scope
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from mercato import __version__
from mercato.access import endpoints as access_endpoints
from mercato.access.dependencies import (
    api_routes,
    idempotent,
    register_bearer_tokens,
    register_instance_tokens,
    route_policy,
)
from mercato.accounts import endpoints as accounts_endpoints
from mercato.accounts.service import identify_bearer, touch_api_token_if_stale
from mercato.app.runtime import Runtime
from mercato.bus.catalogue import document_events
from mercato.bus.events import load_event_types
from mercato.bus.registry import load_handlers
from mercato.bus.service import Bus
from mercato.catalog import endpoints as catalog_endpoints
from mercato.catalog import service as catalog_service
from mercato.config import Settings, load_settings
from mercato.coupons import endpoints as coupons_endpoints
from mercato.earnings import endpoints as earnings_endpoints
from mercato.history import endpoints as history_endpoints
from mercato.installs import agent_endpoints as installs_agent
from mercato.installs import endpoints as installs_endpoints
from mercato.installs.auth import INSTANCE_TOKEN_PREFIX, identify_instance
from mercato.kit.budget import Exempt, RequestBudget
from mercato.kit.errors import ProblemModel
from mercato.kit.foreground import Foreground
from mercato.kit.http import BodyPolicy, BodyRule, RequestMiddleware, install_error_handlers
from mercato.kit.logging import configure_logging, log
from mercato.kit.tasks import cancel_and_wait
from mercato.library import endpoints as library_endpoints
from mercato.licences import endpoints as licences_endpoints
from mercato.listing_detail import endpoints as listing_detail_endpoints
from mercato.live import endpoints as live_endpoints
from mercato.market import endpoints as market_endpoints
from mercato.moderation import endpoints as review_endpoints
from mercato.notifications import endpoints as notifications_endpoints
from mercato.openvsx import endpoints as openvsx_endpoints
from mercato.ops import audit_endpoints, bus_endpoints
from mercato.ops import endpoints as ops_endpoints
from mercato.orders import endpoints as orders_endpoints
from mercato.payments import endpoints as payments_endpoints
from mercato.payments import sandbox_endpoints
from mercato.platform import idempotency
from mercato.policies import endpoints as policies_endpoints
from mercato.publishers import endpoints as publishers_endpoints
from mercato.publishers.service import register_shown_on_listings_changed
from mercato.ratings import endpoints as ratings_endpoints
from mercato.receipts import endpoints as receipts_endpoints
from mercato.refunds import endpoints as refunds_endpoints
from mercato.releases import endpoints as publishing_endpoints
from mercato.stats import endpoints as stats_endpoints
from mercato.sync import endpoints as sync_endpoints
from mercato.wallet import endpoints as wallet_endpoints
from mercato.web import pages as web_pages
from mercato.web import site as web_site
from mercato.web.console import upload_rule as console_upload_rule
from mercato.webhooks import endpoints as webhooks_endpoints

API_PREFIX = "/api/v1"


# Work a store does beside serving, once its bus runs: a coroutine function of the runtime.
BackgroundWork = Callable[[Runtime], Awaitable[object]]


def _name_of(work: BackgroundWork) -> str:
    return getattr(work, "__name__", repr(work))


async def _run_background(work: BackgroundWork, rt: Runtime) -> None:
    try:
        await work(rt)
    except asyncio.CancelledError:
        raise
    except Exception:  # the store goes on serving without it
        log.exception("background work failed", work=_name_of(work))


def _foreground_of(scope: Scope) -> Foreground | None:
    """The requests in flight of the app's runtime (none before its lifespan has made one)."""
    runtime: Runtime | None = getattr(scope["app"].state, "runtime", None)
    return runtime.foreground if runtime is not None else None


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None,
               background: Sequence[BackgroundWork] = ()) -> FastAPI:
    """The store's ASGI app. ``background``: work started once the app runs, on its runtime and
    in its event loop (``serve --demo`` loads the demo so: its writes queue with the requests' on
    the one writer instead of racing them for SQLite's lock), cancelled at stop if unfinished."""
    settings = settings or (runtime.settings if runtime else load_settings())
    configure_logging(level=settings.log_level, json=settings.log_json)
    load_event_types()  # the catalogue the API documentation lists
    # the access guard checks bearer tokens with accounts' and installs' checks (it imports neither)
    register_bearer_tokens(identify_bearer, touch_api_token_if_stale)
    register_instance_tokens(INSTANCE_TOKEN_PREFIX, identify_instance)
    # a publisher's change that shows on its listings evicts their cached details (publishers import no catalog)
    register_shown_on_listings_changed(catalog_service.evict_details_of_publisher)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A runtime the caller put in app.state (create_app(runtime=…), or a test re-using one
        # app with each test's runtime) is the caller's to close; one made here is closed here.
        # Closing it closes its payment gateway (the sandbox's pending webhook deliveries).
        given: Runtime | None = getattr(app.state, "runtime", None)
        rt = app.state.runtime = given or Runtime.from_settings(settings)
        # Embedded: the relay, deliveries and sweeps run in this process. With a broker
        # URL, `mercato worker` processes do that and this one only serves the API.
        bus = app.state.bus = Bus(rt.settings, rt.db, load_handlers(), live=rt.live, runtime=rt,
                                  role="api" if rt.settings.broker_url else "embedded")
        await bus.start()
        tasks = [asyncio.create_task(_run_background(work, rt), name=f"background:{_name_of(work)}")
                 for work in background]
        try:
            yield
        finally:
            app.state.stopping.set()
            await cancel_and_wait(tasks, what="background work")
            await bus.stop()
            if given is None:
                await rt.close()
                del app.state.runtime

    app = FastAPI(
        title="Mercato", version=__version__, lifespan=lifespan,
        openapi_url=f"{API_PREFIX}/openapi.json", docs_url=None, redoc_url=None,  # /api/docs: web/apidocs.py
        description="The HTTP API of a Mercato marketplace. Errors are RFC 9457 problem details with a `code`.",
        responses={400: {"model": ProblemModel, "description": "Malformed request"},
                   422: {"model": ProblemModel, "description": "Invalid request"}},
    )
    if runtime is not None:
        app.state.runtime = runtime
    # Set when the server is asked to stop (``mercato serve``): long polls answer at once.
    app.state.stopping = asyncio.Event()
    install_error_handlers(app)
    # Package uploads are the one large body: multipart, up to the package limit (plus room for
    # the multipart envelope); everything else is JSON under max_body_bytes.
    upload = BodyRule(re.compile(rf"^{API_PREFIX}/listings/[^/]+/versions$"),
                      max_bytes=settings.package_max_bytes + 64 * 1024, content_types=("multipart/form-data",))
    # The sandbox pay page posts an HTML form.
    sandbox_form = BodyRule(re.compile(r"^/sandbox/pay/[^/]+$"), max_bytes=4096,
                            content_types=("application/x-www-form-urlencoded", "multipart/form-data"))
    # ovsx publishes the raw VSIX (chunked, no Content-Length), also under a personal registry URL.
    vsix_upload = BodyRule(re.compile(r"^/openvsx(/t/[^/]+)?/api/-/publish$"), max_bytes=settings.package_max_bytes,
                           content_types=("application/octet-stream", "application/zip", "application/vsix"))
    # Inside RequestMiddleware (added after it), so over-budget answers are counted and logged too.
    app.add_middleware(RequestBudget, seconds=settings.request_timeout_seconds, foreground=_foreground_of, exempt=[
        Exempt("POST", upload.pattern),  # a large body takes its time to arrive
        Exempt("GET", re.compile(rf"^{API_PREFIX}/events/stream$")),  # streams until the client leaves
        Exempt("GET", re.compile(r"^/live/[^/]+$")),  # a page's live wire (web/live.py), likewise
    ])
    body_policy = BodyPolicy(default_max_bytes=settings.max_body_bytes,
                             rules=[upload, sandbox_form, vsix_upload, console_upload_rule(settings),
                                    web_pages.FORM_RULE])
    app.add_middleware(RequestMiddleware, body_policy=body_policy,
                       access_log=settings.access_log, slow_ms=settings.access_log_slow_ms)
    # Outside RequestMiddleware (added after it): the client's address and scheme come from
    # X-Forwarded-For/-Proto only through a trusted proxy, before the request context (the audit
    # log's address), the answers given before routing, the sign-in lockout and the sign-up limit
    # read them.
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)  # type: ignore[arg-type]

    for module in (accounts_endpoints, access_endpoints, publishers_endpoints, audit_endpoints, bus_endpoints,
                   live_endpoints, webhooks_endpoints, catalog_endpoints, listing_detail_endpoints,
                   publishing_endpoints, review_endpoints, library_endpoints, ratings_endpoints,
                   notifications_endpoints, stats_endpoints, policies_endpoints, wallet_endpoints,
                   refunds_endpoints, receipts_endpoints):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(accounts_endpoints.admin_router, prefix=API_PREFIX)
    app.include_router(review_endpoints.versions_router, prefix=API_PREFIX)
    app.include_router(licences_endpoints.router, prefix=API_PREFIX)
    app.include_router(orders_endpoints.router, prefix=API_PREFIX)
    app.include_router(coupons_endpoints.router, prefix=API_PREFIX)
    app.include_router(earnings_endpoints.router, prefix=API_PREFIX)
    app.include_router(payments_endpoints.router, prefix=API_PREFIX)
    app.include_router(installs_endpoints.router, prefix=API_PREFIX)
    app.include_router(installs_agent.router, prefix=API_PREFIX)
    app.include_router(history_endpoints.router, prefix=API_PREFIX)
    app.include_router(sync_endpoints.router, prefix=API_PREFIX)
    app.include_router(market_endpoints.router, prefix=API_PREFIX)
    # Open VSX and the VS Code gallery (docs/openvsx.md): the public registry URL and a user's personal one.
    app.include_router(openvsx_endpoints.account_router, prefix=API_PREFIX)
    app.include_router(openvsx_endpoints.router, prefix=openvsx_endpoints.PREFIX)
    app.include_router(openvsx_endpoints.personal_router, prefix=openvsx_endpoints.PERSONAL_PREFIX)
    if settings.sandbox_payments_enabled:  # the built-in provider's pay page and API (docs/payments.md)
        app.include_router(sandbox_endpoints.router)
    app.include_router(ops_endpoints.router)
    # The pages (WEB.md): storefront and consoles, static files, /api/docs, error pages for page paths.
    web_site.install(app)
    # Full path templates (with prefixes) of every route, for metrics labels.
    routes = api_routes(app)
    app.state.route_templates = {id(route): path for path, route in routes}
    # Path patterns of the same, to label requests refused before routing (413, 415).
    app.state.route_patterns = [(compile_path(path)[0], path) for path, _ in routes]
    # And the methods each answers, for the Allow header of a 405 (kit/http.allowed_methods).
    app.state.route_methods = [(compile_path(path)[0], frozenset(route.methods)) for path, route in routes]
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


PROBLEM_REF = "#/components/schemas/ProblemModel"
PROBLEM_CONTENT = "application/problem+json"
_VALIDATION_REFS = ("#/components/schemas/HTTPValidationError", "#/components/schemas/ValidationError")


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_CONTENT: {"schema": {"$ref": PROBLEM_REF}}}}


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with each operation's permission as ``x-permission`` and every
    error it can answer documented as problem JSON (QUALITY I2: no undocumented status)."""
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
                if policy == "public" and operation.get("security") and {} not in operation["security"]:
                    # Public: credentials are read when sent (they may show more), never required.
                    operation["security"] = [*operation["security"], {}]
                _document_errors(operation, policy)
                key_required = _idempotency_key(route)
                if key_required is not None:
                    _document_idempotency_key(operation, required=key_required)
    # Validation errors are ProblemModel too; FastAPI's own models are then unused.
    for name in ("HTTPValidationError", "ValidationError"):
        schema.get("components", {}).get("schemas", {}).pop(name, None)
    document_events(schema)
    app.openapi_schema = schema
    return schema


def _document_errors(operation: dict[str, Any], policy: str | None) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    # Errors are sent as application/problem+json (kit/errors.py), whatever FastAPI assumed.
    for status, response in list(responses.items()):
        if not (status.isdigit() and int(status) >= 400) or not response.get("content"):
            continue
        if response.get("x-html-page"):  # an HTML page answering with the error shown on it
            continue
        content = response["content"]
        # An HTML page's errors are problems too: FastAPI documented them as the page's type.
        assumed = next((kind for kind in ("application/json", "text/html") if kind in content), None)
        if PROBLEM_CONTENT not in content and assumed is not None:
            media = content.pop(assumed)
            if assumed == "text/html":
                media = {"schema": {"$ref": PROBLEM_REF}}
            if media.get("schema", {}).get("$ref") in _VALIDATION_REFS:
                media = {"schema": {"$ref": PROBLEM_REF}}
            content[PROBLEM_CONTENT] = media
    # Any bearer credentials sent are checked, even on public routes that read them optionally.
    if operation.get("security") or (policy and policy != "public"):
        responses.setdefault("401", _problem("Missing, invalid or expired credentials"))
    if policy not in (None, "public", "authenticated"):
        responses.setdefault("403", _problem(f"Needs {policy}"))
    # The request middleware refuses bodies before routing (kit/http.py).
    if "requestBody" in operation:
        responses.setdefault("413", _problem("The body is too large"))
        responses.setdefault("415", _problem("The body is not JSON"))


# Every ``idempotent(...)`` dependency is a closure over the same code.
_IDEMPOTENT_CODE = idempotent(required=False).dependency.__code__


def _idempotency_key(route: APIRoute) -> bool | None:
    """Whether the route takes an ``Idempotency-Key``: None (no), False (optional), True (required)."""
    stack = list(route.dependant.dependencies)
    while stack:
        dependant = stack.pop()
        if getattr(dependant.call, "__code__", None) is _IDEMPOTENT_CODE:
            return bool(inspect.getclosurevars(dependant.call).nonlocals.get("required"))
        stack.extend(dependant.dependencies)
    return None


def _document_idempotency_key(operation: dict[str, Any], *, required: bool) -> None:
    parameters: list[dict[str, Any]] = operation.setdefault("parameters", [])
    if not any(p.get("in") == "header" and p.get("name", "").lower() == idempotency.HEADER.lower()
               for p in parameters):
        parameters.append({
            "name": idempotency.HEADER, "in": "header", "required": required,
            "description": ("Makes a retry safe: the same key with the same body within the retention "
                            "period answers with the stored response (`Idempotent-Replayed: true`). "
                            "Keys are scoped to the caller."),
            "schema": {"type": "string", "minLength": 1, "maxLength": idempotency.MAX_KEY_LENGTH,
                       "pattern": "^[!-~]([ -~]*[!-~])?$"},  # printable ASCII, e.g. a UUID
        })
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.setdefault("409", _problem("A request with this Idempotency-Key is still running (retry)"))
    responses.setdefault("422", _problem("Invalid request, or the Idempotency-Key was used for another body"))
    responses.setdefault("400", _problem("Malformed request, or a missing or invalid Idempotency-Key"))
