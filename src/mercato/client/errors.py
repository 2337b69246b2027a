"""What goes wrong when talking to a store, as exceptions whose ``str()`` a person can act on.

Every non-2xx answer becomes :class:`ApiError`, parsed from the RFC 9457 problem body the
server sends (with a readable fallback when the body is not JSON); every network failure
becomes :class:`ClientError` with a message that says why the store could not be reached.
"""

from __future__ import annotations

import re
from typing import Any

import httpx


class ClientError(Exception):
    """The store could not be asked or answered in a way we can use; ``str()`` is readable."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ApiError(ClientError):
    """The store answered with an error (a non-2xx status)."""

    def __init__(self, status: int, code: str, title: str, detail: str,
                 errors: list[dict[str, Any]] | None = None, request_id: str | None = None,
                 retry_after: str | None = None) -> None:
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.request_id = request_id
        self.retry_after = retry_after
        super().__init__(self._render())

    def _render(self) -> str:
        text = f"{self.code}: {self.detail}" if self.detail else f"{self.code}: {self.title}"
        fields = format_field_errors(self.errors, manifest=self.code.startswith("manifest_"), known=text)
        if fields:
            text = f"{text} ({fields})"
        if self.retry_after:
            text = f"{text}; retry after {self.retry_after} s"
        return text

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        """Read a problem document; fall back to the status line and a short excerpt of the body."""
        status = response.status_code
        reason = response.reason_phrase or httpx.codes.get_reason_phrase(status) or "error"
        retry_after = response.headers.get("retry-after")
        body: Any = None
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            body = None
        if isinstance(body, dict) and ("code" in body or "detail" in body or "title" in body):
            raw_errors = body.get("errors")
            errors = [e for e in raw_errors if isinstance(e, dict)] if isinstance(raw_errors, list) else []
            detail = body.get("detail")
            if not isinstance(detail, str):  # FastAPI's own {"detail": [...]} or odd servers
                detail = _one_line(str(detail)) if detail is not None else ""
            return cls(status, str(body.get("code") or _code_for(status)), str(body.get("title") or reason),
                       _one_line(detail), errors, body.get("request_id") if isinstance(body.get("request_id"), str)
                       else None, retry_after)
        excerpt = _one_line(response.text)[:200] if _is_text(response) else ""
        detail = f"HTTP {status} {reason}" + (f": {excerpt}" if excerpt else "")
        return cls(status, _code_for(status), reason, detail, [], response.headers.get("x-request-id"), retry_after)


class ChecksumMismatch(ClientError):
    """A downloaded artifact's SHA-256 differs from the one the store declared."""


def format_field_errors(errors: list[dict[str, Any]], *, limit: int = 3, manifest: bool = False,
                        known: str = "") -> str:
    """``[{"loc": ["body", "reason"], "msg": "..."}]`` as ``reason: ...``, a few at most, on one line.

    Manifest problems read as TOML: ``["package", "nmae"]`` → ``[package] nmae``. Problems
    whose message ``known`` (the detail) already says are left out.
    """
    parts: list[str] = []
    errors = [e for e in errors if not (known and str(e.get("msg") or "") and _one_line(str(e["msg"])) in known)]
    for error in errors[:limit]:
        loc = [str(p) for p in error.get("loc") or []]
        if loc and loc[0] in {"body", "query", "path", "header", "form", "cookie"}:
            loc = loc[1:]
        message = _one_line(str(error.get("msg") or error.get("message") or error.get("type") or "invalid"))
        if manifest and len(loc) >= 2 and not loc[0].startswith("["):
            where = f"[{loc[0]}] {'.'.join(loc[1:])}"
        elif manifest and len(loc) == 1 and not loc[0].startswith("["):
            where = f"[{loc[0]}]"
        else:
            where = ".".join(loc)
        parts.append(f"{where}: {message}" if where else message)
    if len(errors) > limit:
        parts.append(f"and {len(errors) - limit} more")
    return "; ".join(parts)


def _code_for(status: int) -> str:
    return {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found", 409: "conflict",
            413: "payload_too_large", 415: "unsupported_media_type", 422: "validation_failed",
            429: "rate_limited", 502: "bad_gateway", 503: "service_unavailable",
            504: "gateway_timeout"}.get(status, f"http_{status}")


def _is_text(response: httpx.Response) -> bool:
    kind = response.headers.get("content-type", "")
    return kind.startswith("text/plain") or kind.startswith("application/json") or kind == ""


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


_ERRNO = re.compile(r"^\[[^]]*\]\s*")


def network_message(server: str, error: httpx.TransportError) -> str:
    """A network failure as a person reads it: ``cannot reach <server>: <reason>``."""
    text = str(error) or type(error).__name__
    lowered = text.lower()
    if isinstance(error, httpx.TimeoutException):
        reason = "timed out"
    elif "connection refused" in lowered or "connect call failed" in lowered:
        reason = "connection refused"
    elif ("name or service not known" in lowered or "nodename nor servname" in lowered
          or "temporary failure in name resolution" in lowered or "no address associated" in lowered
          or "getaddrinfo failed" in lowered):
        reason = "unknown host"
    elif "certificate" in lowered or "ssl" in lowered:
        reason = f"TLS error ({_one_line(_ERRNO.sub('', text))})"
    elif isinstance(error, httpx.RemoteProtocolError):
        reason = f"the connection was closed unexpectedly ({_one_line(text)})"
    else:
        reason = _one_line(_ERRNO.sub("", text)).rstrip(".") or "network error"
    return f"cannot reach {server}: {reason}"


class SignatureInvalid(ClientError):
    """An artifact's Ed25519 signature is missing, from an unknown key, or does not verify."""
