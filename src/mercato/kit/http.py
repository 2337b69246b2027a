"""HTTP plumbing shared by every route: request ids, body limits, content types,
metrics, access logs, and rendering every error as RFC 9457 problem JSON."""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError, OperationalError, StatementError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mercato.kit.db import DatabaseUnavailable, is_database_unavailable
from mercato.kit.errors import (
    MalformedBody,
    MercatoError,
    PayloadTooLarge,
    ServiceUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
    problem_body,
    problem_response,
)
from mercato.kit.logging import log
from mercato.kit.metrics import HTTP_ERRORS, HTTP_LATENCY, HTTP_REQUESTS
from mercato.kit.requestinfo import RequestInfo, set_current_request

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
DATA_EXCEPTION_CLASS = "22"  # SQLSTATE class 22: data exception (bad value), e.g. 22021 NUL in text
TRANSACTION_ROLLBACK_CLASS = "40"  # SQLSTATE class 40: 40001 serialization failure, 40P01 deadlock
JSON_TYPES = ("application/json", "application/problem+json", "application/merge-patch+json")


@dataclass
class BodyRule:
    """Limits for request bodies on paths matching ``pattern`` (first match wins)."""

    pattern: re.Pattern[str]
    max_bytes: int
    content_types: tuple[str, ...]


@dataclass
class BodyPolicy:
    default_max_bytes: int
    rules: list[BodyRule] = field(default_factory=list)

    def for_path(self, path: str) -> tuple[int, tuple[str, ...]]:
        for rule in self.rules:
            if rule.pattern.match(path):
                return rule.max_bytes, rule.content_types
        return self.default_max_bytes, JSON_TYPES


class _BodyTooLarge(Exception):
    pass


# --- answers given before routing --------------------------------------------------------------
# Routing a request through FastAPI (every route pattern, then the dependencies) costs several
# times what a cached answer does. A module may register a fast path for a GET route whose
# answer it can often give from a cache: ``answer(scope, headers)`` returns the ASGI response
# the route would have sent, or None to let the request take the ordinary way (a miss,
# credentials to check, anything unusual). Request id, metrics (under ``template``) and the
# access log line are the same either way.

FastAnswer = Callable[[Scope, dict[str, str]], Awaitable[ASGIApp | None]]


@dataclass(frozen=True)
class FastPath:
    prefix: str  # only paths that start with this are offered to ``answer``
    template: str  # the route's full path template (the metrics label)
    answer: FastAnswer


FAST_PATHS: list[FastPath] = []


def register_fast_path(path: FastPath) -> None:
    FAST_PATHS[:] = [p for p in FAST_PATHS if p.template != path.template] + [path]


async def _fast_answer(scope: Scope, headers: dict[str, str]) -> tuple[str, ASGIApp] | None:
    if scope["method"] != "GET":
        return None
    for fast in FAST_PATHS:
        if scope["path"].startswith(fast.prefix):
            try:
                answer = await fast.answer(scope, headers)
            except Exception:  # whatever went wrong, the ordinary way reports it properly
                return None
            if answer is not None:
                return fast.template, answer
    return None


# Metric children by label values: ``labels()`` validates and locks on every call.
_REQUEST_METRICS: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}


def _observe(template: str, method: str, status: int, elapsed: float) -> None:
    key = (template, method, status)
    children = _REQUEST_METRICS.get(key)
    if children is None:
        if len(_REQUEST_METRICS) > 10_000:
            _REQUEST_METRICS.clear()
        children = _REQUEST_METRICS[key] = (
            HTTP_REQUESTS.labels(template, method, str(status)), HTTP_LATENCY.labels(template, method),
            HTTP_ERRORS.labels(template, method, str(status)) if status >= 400 else None)
    requests, latency, errors = children
    requests.inc()
    latency.observe(elapsed)
    if errors is not None:
        errors.inc()


# Request ids: a random prefix per process and a counter (unique across processes, and a
# fraction of the cost of a uuid4 per request), 32 hex digits like one.
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(1)

ACCESS_LOG_MODES = ("all", "problems", "off")


def _without_body(send: Send) -> Send:
    async def send_head(message: Message) -> None:
        if message["type"] == "http.response.body":
            if message.get("more_body", False):
                return  # the rest of a streamed body: dropped; the last chunk ends the answer
            message = {"type": "http.response.body", "body": b"", "more_body": False}
        await send(message)
    return send_head


def allowed_methods(app: Any, path: str) -> list[str]:
    """Every method some API route answers at ``path`` (HEAD wherever GET is: see
    RequestMiddleware), from ``app.state.route_methods`` (built by create_app)."""
    methods: set[str] = set()
    for pattern, answered in getattr(getattr(app, "state", None), "route_methods", []):
        if pattern.match(path):
            methods.update(answered)
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


class RequestMiddleware:
    """Pure ASGI middleware: request id, body limits (413), content type (415),
    metrics per route template and the access log.

    The access log (``access_log``): ``all`` writes a line per request; ``problems`` (the
    default) only for answers ≥ 400 and requests slower than ``slow_ms``; ``off`` none.
    Every request is counted in the Prometheus metrics whatever the mode: a rendered log
    line costs more CPU than a cached answer itself, so a line per request is a choice for
    debugging, not the default."""

    def __init__(self, app: ASGIApp, *, body_policy: BodyPolicy, access_log: str = "problems",
                 slow_ms: float = 10_000.0) -> None:
        assert access_log in ACCESS_LOG_MODES, access_log
        self.app = app
        self.body_policy = body_policy
        self.access_log = access_log
        self.slow_seconds = slow_ms / 1000

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "HEAD":
            # HEAD is GET without the body (RFC 9110 9.3.2), for every GET route and fast path:
            # the same status and headers (Content-Length included), no body bytes.
            scope = {**scope, "method": "GET"}
            send = _without_body(send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        offered = headers.get(REQUEST_ID_HEADER, "")
        request_id = (offered if offered and _VALID_REQUEST_ID.match(offered)
                      else f"{_ID_PREFIX}{next(_ID_COUNTER):016x}")
        client = scope.get("client")
        info = RequestInfo(request_id=request_id, ip=client[0] if client else None,
                           user_agent=headers.get("user-agent"))
        set_current_request(info)
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status_holder = {"status": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        early: ASGIApp | None = None
        fast: tuple[str, ASGIApp] | None = None
        try:
            early = self._check_body(scope, headers)
            if early is not None:
                await early(scope, receive, send_wrapper)
                return
            if FAST_PATHS:
                fast = await _fast_answer(scope, headers)
                if fast is not None:
                    await fast[1](scope, receive, send_wrapper)
                    return
            max_bytes, _ = self.body_policy.for_path(scope["path"])
            await self.app(scope, self._limited(receive, max_bytes), send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            if fast is not None:
                template = fast[0]
            else:
                route = scope.get("route")
                templates = getattr(getattr(scope.get("app"), "state", None), "route_templates", {})
                template = templates.get(id(route)) or getattr(route, "path", None)
                if template is None and early is not None:  # refused before routing: find its template
                    template = _template_of(scope)
                template = template or "<unmatched>"
            method = scope["method"]
            status = status_holder["status"]
            _observe(template, method, status, elapsed)
            if self.access_log == "all" or (self.access_log == "problems" and (
                    status >= 400 or elapsed >= self.slow_seconds)):
                log.info("request", method=method, path=scope["path"], route=template, status=status,
                         ms=round(elapsed * 1000, 2))

    def _check_body(self, scope: Scope, headers: dict[str, str]) -> ASGIApp | None:
        query = scope.get("query_string", b"")
        if b"%00" in query or b"\x00" in query:
            # No text in the store may hold NUL (PostgreSQL refuses it, SQLite would keep it):
            # refuse it the same way on both, before any query runs.
            return _problem_app(ValidationFailed("Query parameters must not contain NUL characters.", errors=[
                {"loc": ["query"], "msg": "NUL character", "type": "value_error"}]))
        max_bytes, content_types = self.body_policy.for_path(scope["path"])
        length = headers.get("content-length")
        if length is not None:
            if not length.isascii() or not length.isdigit():
                return _problem_app(MalformedBody("Content-Length is not a number."))
            if len(length) > 18 or int(length) > max_bytes:  # (int() refuses very long digit strings)
                return _problem_app(PayloadTooLarge(f"The body may be at most {max_bytes} bytes."))
        has_body = (length is not None and int(length) > 0) or "transfer-encoding" in headers
        if scope["method"] in ("POST", "PUT", "PATCH") and has_body:
            media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if media_type not in content_types:
                return _problem_app(UnsupportedMediaType(
                    f"Send the body as {' or '.join(content_types)} (got {media_type or 'no Content-Type'})."))
        return None

    @staticmethod
    def _limited(receive: Receive, max_bytes: int) -> Receive:
        seen = 0

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    raise _BodyTooLarge()
            return message

        return wrapped


def _template_of(scope: Scope) -> str | None:
    patterns = getattr(getattr(scope.get("app"), "state", None), "route_patterns", ())
    for pattern, template in patterns:
        if pattern.match(scope["path"]):
            return template  # type: ignore[no-any-return]
    return None


def _problem_app(error: MercatoError) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        await problem_response(request, error)(scope, receive, send)

    return app


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for error in exc.errors():
        out.append({"loc": [str(p) if not isinstance(p, int) else p for p in error.get("loc", ())],
                    "msg": str(error.get("msg", "")), "type": str(error.get("type", ""))})
    return out


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MercatoError)
    async def on_mercato_error(request: Request, exc: MercatoError) -> JSONResponse:
        return problem_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        if any(e["type"] == "json_invalid" for e in errors):
            return problem_response(request, MalformedBody("The body is not valid JSON.", errors=errors))
        return problem_response(request, ValidationFailed("Some fields are missing or invalid.", errors=errors))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, _BodyTooLarge):  # FastAPI wraps errors raised while reading the body
            return problem_response(request, PayloadTooLarge("The body is larger than this endpoint accepts."))
        if exc.status_code == 400 and exc.__cause__ is not None:  # the body could not be parsed at all
            return problem_response(request, MalformedBody(
                "The body could not be parsed (not valid JSON, or nested too deeply)."))
        codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request", 413: "payload_too_large"}
        code = codes.get(exc.status_code, f"http_{exc.status_code}")
        body = problem_body(status=exc.status_code, code=code, title=str(exc.detail), detail=str(exc.detail),
                            request_id=getattr(request.state, "request_id", None))
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # the router names only the first route's methods at this path
            allowed = allowed_methods(request.app, request.url.path)
            if allowed:
                headers["Allow"] = ", ".join(allowed)
        return JSONResponse(body, status_code=exc.status_code, headers=headers or None,
                            media_type="application/problem+json")

    @app.exception_handler(_BodyTooLarge)
    async def on_body_too_large(request: Request, exc: _BodyTooLarge) -> JSONResponse:
        return problem_response(request, PayloadTooLarge("The body is larger than this endpoint accepts."))

    @app.exception_handler(OperationalError)
    async def on_database_unavailable(request: Request, exc: OperationalError) -> JSONResponse:
        log.error("database unavailable", error=str(exc.orig) if exc.orig else str(exc))
        return problem_response(request, ServiceUnavailable("The database is unavailable; try again shortly.",
                                                            headers={"Retry-After": "2"}))

    @app.exception_handler(PoolTimeout)
    async def on_database_pool_exhausted(request: Request, exc: PoolTimeout) -> JSONResponse:
        # Every connection stayed busy for the pool's whole timeout: overload, not a fault of
        # the request. A 503 with Retry-After lets clients back off (QUALITY F9), never a 500.
        log.warning("database pool exhausted", error=str(exc))
        return problem_response(request, ServiceUnavailable("The store is busy; try again shortly.",
                                                            headers={"Retry-After": "2"}))

    @app.exception_handler(DBAPIError)
    async def on_database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        if is_database_unavailable(exc):  # kit/db.py turns these into DatabaseUnavailable; any that slip by
            log.warning("database unavailable", error=str(exc.orig))
            return problem_response(request, DatabaseUnavailable())
        sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(TRANSACTION_ROLLBACK_CLASS):
            # The database chose this transaction as the victim of a deadlock or a
            # serialization conflict and rolled all of it back: nothing changed, and the same
            # request again will go through.
            log.warning("database rolled back a conflicting transaction", sqlstate=sqlstate)
            return problem_response(request, ServiceUnavailable(
                "A concurrent change conflicted with this request and nothing was changed; retry it.",
                headers={"Retry-After": "1"}))
        if isinstance(sqlstate, str) and sqlstate.startswith(DATA_EXCEPTION_CLASS):
            # A value from the request the database cannot store or compare (a NUL character,
            # out of range, too long): bad input, not our failure. Validation should catch
            # these first; this keeps any it misses from becoming a 500.
            log.warning("database refused a value", sqlstate=sqlstate, error=str(exc.orig))
            return problem_response(request, ValidationFailed(
                "A value cannot be stored: it contains a NUL character, or is out of range or too long."))
        log.exception("database error")
        return _internal(request)

    @app.exception_handler(StatementError)
    async def on_unbindable_value(request: Request, exc: StatementError) -> JSONResponse:
        # A value that could not even be sent to the database (e.g. a timestamp that leaves the
        # representable range when converted to UTC): bad input that validation let through.
        if isinstance(exc.orig, (OverflowError, ValueError)):
            log.warning("database refused a value", error=str(exc.orig), statement=exc.statement)
            return problem_response(request, ValidationFailed(
                "A value is out of the range this server can store (check dates and numbers)."))
        log.exception("database statement error")
        return _internal(request)

    @app.exception_handler(OSError)
    async def on_dependency_unreachable(request: Request, exc: OSError) -> JSONResponse:
        # A socket or file error from a dependency (a database driver between two checks of
        # its connection, the artifact store): the dependency failed, not the request.
        log.exception("a dependency failed", error=str(exc))
        return problem_response(request, ServiceUnavailable("A service this store depends on is unavailable; "
                                                            "try again shortly.", headers={"Retry-After": "2"}))

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return _internal(request)


def _internal(request: Request) -> JSONResponse:
    body = problem_body(status=500, code="internal_error", title="Internal error",
                        detail="Something went wrong on our side; the request id helps us find it.",
                        request_id=getattr(request.state, "request_id", None))
    return JSONResponse(body, status_code=500, media_type="application/problem+json")
