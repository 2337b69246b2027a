"""Typed domain errors and their rendering as RFC 9457 problem details.

Every error the API returns goes through :func:`problem_response`, so clients always get
``application/problem+json`` with ``type``, ``title``, ``status``, ``detail``, ``code``,
``request_id`` and, for validation, ``errors``.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import JSONResponse

PROBLEM_TYPE_BASE = "https://mercato.dev/problems/"

T = TypeVar("T")


class MercatoError(Exception):
    """Base for every expected failure. Subclasses set ``status`` and ``code``."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str | None = None, *, errors: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra

    @classmethod
    def responses(cls, *others: type[MercatoError]) -> dict[int | str, dict[str, Any]]:
        """OpenAPI ``responses`` entries for this error and ``others``."""
        out: dict[int | str, dict[str, Any]] = {}
        for error in (cls, *others):
            out[error.status] = {"model": ProblemModel, "description": error.title}
        return out


class BadRequest(MercatoError):
    status, code, title = 400, "bad_request", "Bad request"


class MalformedBody(MercatoError):
    status, code, title = 400, "malformed_body", "The request body is not valid JSON"


class Unauthenticated(MercatoError):
    status, code, title = 401, "unauthenticated", "Authentication required"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kwargs)


class Forbidden(MercatoError):
    status, code, title = 403, "forbidden", "Not allowed"


class NotFound(MercatoError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(MercatoError):
    status, code, title = 409, "conflict", "Conflict with the current state"


class InvalidTransition(Conflict):
    code, title = "invalid_transition", "That change is not allowed in the current state"


class PayloadTooLarge(MercatoError):
    status, code, title = 413, "payload_too_large", "The request body is too large"


class UnsupportedMediaType(MercatoError):
    status, code, title = 415, "unsupported_media_type", "Unsupported content type"


class ValidationFailed(MercatoError):
    status, code, title = 422, "validation_failed", "The request is not valid"


class RangeNotSatisfiable(ValidationFailed):
    status, code, title = 416, "range_not_satisfiable", "The requested range is outside the file"


class RateLimited(MercatoError):
    status, code, title = 429, "rate_limited", "Too many requests"

    def __init__(self, detail: str | None = None, *, retry_after: int, **kwargs: Any) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))}, **kwargs)
        self.retry_after = retry_after


class ServiceUnavailable(MercatoError):
    status, code, title = 503, "service_unavailable", "Temporarily unavailable"


def found_or_raise(value: T | None, error: type[MercatoError], detail: str, **extra: Any) -> T:
    """``value`` when there is one, else ``error(detail)`` raised: the get-or-404 of services and
    endpoints (``error`` is the typed not-found error of what was looked up)."""
    if value is None:
        raise error(detail, **extra)
    return value


# --- rendering ---------------------------------------------------------------------------

class ProblemField(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ProblemModel(BaseModel):
    """RFC 9457 problem details as Mercato sends them."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    code: str
    request_id: str | None = None
    errors: list[ProblemField] | None = None


def problem_body(*, status: int, code: str, title: str, detail: str, request_id: str | None,
                 errors: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": request_id,
    }
    if errors is not None:
        body["errors"] = errors
    body.update(extra)
    return body


def problem_response(request: Request | None, error: MercatoError) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None) if request is not None else None
    body = problem_body(status=error.status, code=error.code, title=error.title, detail=error.detail,
                        request_id=request_id, errors=error.errors, **error.extra)
    return JSONResponse(body, status_code=error.status, headers=error.headers,
                        media_type="application/problem+json")
