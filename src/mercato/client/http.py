"""A typed HTTP client for a Mercato store: the publisher CLI and the install agent use it.

Every non-2xx answer becomes :class:`ApiError`, parsed from the RFC 9457 problem body the
server sends (with a readable fallback when the body is not JSON); every network failure
becomes :class:`ClientError` with a message a person can act on. Uploads and downloads
stream from and to disk, so a package never has to fit in memory.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mercato.kit import keys as signing

API_PREFIX = "/api/v1"
CHUNK_SIZE = 256 * 1024
MAX_PAGES = 100

Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes in total) as a transfer goes on; total is 0 when unknown."""


# --- errors ------------------------------------------------------------------------------

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


def _network_message(server: str, error: httpx.TransportError) -> str:
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


# --- models ------------------------------------------------------------------------------

class _Model(BaseModel):
    """Responses: unknown fields are kept (``extra``), so a newer server never breaks an older client."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class TokenPair(_Model):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int | None = None


class CreatedToken(_Model):
    id: str
    name: str
    token: str
    hint: str | None = None
    scopes: list[str] = Field(default_factory=list)
    created_at: datetime | None = None
    expires_at: datetime | None = None


class User(_Model):
    id: str
    email: str
    display_name: str = ""
    roles: list[str] = Field(default_factory=list)


class PublisherRef(_Model):
    id: str | None = None
    slug: str
    name: str = ""
    verified: bool = False


class VersionRef(_Model):
    version: str


class Listing(_Model):
    id: str
    slug: str
    name: str = ""
    kind: str = ""
    status: str = ""
    publisher: PublisherRef | None = None
    summary: str = ""
    latest_version: VersionRef | None = None


class Finding(_Model):
    severity: str = ""
    code: str = ""
    message: str = ""
    path: str | None = None


class Checks(_Model):
    risk_score: float | int | None = None
    findings: list[Finding] = Field(default_factory=list)


class Version(_Model):
    id: str
    listing_id: str | None = None
    version: str
    status: str
    sha256: str | None = None
    size: int | None = None
    created_at: datetime | None = None
    submitted_at: datetime | None = None
    decided_at: datetime | None = None
    decision_reason: str | None = None
    yank_reason: str | None = None
    checks: Checks | None = None
    manifest: dict[str, Any] | None = None


class PublicKey(_Model):
    id: str
    algorithm: str = "ed25519"
    public_key: str


@dataclass(frozen=True)
class DownloadResult:
    """A downloaded artifact. ``sha256`` was computed while writing and equals the store's header."""

    path: Path
    sha256: str
    size: int
    signature: str | None
    key_id: str | None
    etag: str | None = None


M = TypeVar("M", bound=BaseModel)


# --- the client --------------------------------------------------------------------------

def normalize_server(server: str) -> str:
    """``https://store.example/`` or ``…/api/v1`` → ``https://store.example``; a scheme is required."""
    server = server.strip().rstrip("/")
    if server.endswith(API_PREFIX):
        server = server[: -len(API_PREFIX)].rstrip("/")
    if not re.match(r"^https?://[^/\s]+", server):
        raise ClientError(f"{server or '(empty)'} is not a server URL; give one like http://localhost:8000")
    return server


class MercatoClient:
    """Synchronous client for one store. Use as a context manager, or call :meth:`close`."""

    def __init__(self, server: str, token: str | None = None, *, timeout: float = 30,
                 transport: httpx.BaseTransport | None = None, user_agent: str | None = None) -> None:
        self.server = normalize_server(server)
        self.token = token
        headers = {"User-Agent": user_agent or f"mercato-client/{_package_version()}",
                   "Accept": "application/json, application/problem+json"}
        self._http = httpx.Client(base_url=self.server + API_PREFIX, headers=headers, transport=transport,
                                  timeout=httpx.Timeout(timeout, connect=min(timeout, 10)),
                                  follow_redirects=False)

    def __enter__(self) -> MercatoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- plumbing --

    def _auth(self, token: str | None = None) -> dict[str, str]:
        token = token or self.token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def request(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> httpx.Response:
        """Send one request; raise :class:`ApiError` for a non-2xx answer, :class:`ClientError` offline."""
        headers = {**self._auth(token), **kwargs.pop("headers", {})}
        try:
            response = self._http.request(method, path, headers=headers, **kwargs)
        except httpx.TransportError as error:
            raise ClientError(_network_message(self.server, error)) from error
        if not response.is_success:
            raise ApiError.from_response(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as error:
            raise ClientError(f"{self.server} answered {method} {path} with something that is not JSON; "
                              "is this a Mercato store?") from error

    def _model(self, model: type[M], data: Any, what: str) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise ClientError(f"unexpected {what} from {self.server} ({where}: {first['msg']}); "
                              "is the store a compatible version?") from error

    def _items(self, path: str, model: type[M], what: str, params: dict[str, Any] | None = None) -> list[M]:
        """Every item of a cursor-paginated list, following ``next_cursor``."""
        items: list[M] = []
        query: dict[str, Any] = {"limit": 100, **(params or {})}
        for _ in range(MAX_PAGES):
            page = self._json("GET", path, params=query)
            if not isinstance(page, dict) or not isinstance(page.get("items"), list):
                raise ClientError(f"unexpected {what} list from {self.server}; is the store a compatible version?")
            items.extend(self._model(model, item, what) for item in page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
            query["cursor"] = cursor
        return items

    # -- accounts --

    def login(self, email: str, password: str) -> TokenPair:
        data = self._json("POST", "/auth/login", json={"email": email, "password": password}, token="")
        return self._model(TokenPair, data, "login answer")

    def create_api_token(self, name: str, scopes: list[str] | None = None, expires_in_days: int | None = 90, *,
                         access_token: str | None = None) -> CreatedToken:
        body: dict[str, Any] = {"name": name, "expires_in_days": expires_in_days}
        if scopes:
            body["scopes"] = scopes
        data = self._json("POST", "/me/tokens", json=body, token=access_token)
        return self._model(CreatedToken, data, "API token")

    def revoke_api_token(self, token_id: str, *, access_token: str | None = None) -> None:
        self.request("DELETE", f"/me/tokens/{_seg(token_id)}", token=access_token)

    def me(self) -> User:
        return self._model(User, self._json("GET", "/me"), "account")

    # -- catalog and versions --

    def get_listing(self, id_or_slug: str) -> Listing:
        return self._model(Listing, self._json("GET", f"/listings/{_seg(id_or_slug)}"), "listing")

    def create_listing(self, *, publisher: str, slug: str, name: str, kind: str, summary: str = "",
                       homepage: str | None = None, license: str | None = None) -> Listing:
        """A new draft listing of the publisher (``POST /listings``); free until offers are set."""
        body: dict[str, Any] = {"publisher": publisher, "slug": slug, "name": name, "kind": kind, "summary": summary}
        if homepage:
            body["homepage"] = homepage
        if license:
            body["license"] = license
        return self._model(Listing, self._json("POST", "/listings", json=body), "listing")

    def publisher_listings(self, publisher_slug: str) -> list[Listing]:
        return self._items(f"/publishers/{_seg(publisher_slug)}/listings", Listing, "listing")

    def list_versions(self, listing: str) -> list[Version]:
        return self._items(f"/listings/{_seg(listing)}/versions", Version, "version")

    def get_version(self, listing: str, version: str) -> Version:
        return self._model(Version, self._json("GET", f"/listings/{_seg(listing)}/versions/{_seg(version)}"),
                           "version")

    def upload_version(self, listing: str, path: Path | str, *, progress: Progress | None = None,
                       sha256: str | None = None) -> Version:
        """Upload a package archive as a new version (status ``uploaded``).

        The file is hashed, then streamed from disk as ``multipart/form-data`` with a known
        Content-Length (so the store can refuse an over-size upload before reading it);
        ``progress(sent, total)`` follows the bytes of the file as they go out.
        """
        path = Path(path)
        try:
            size = path.stat().st_size
            digest = sha256 or file_sha256(path)
        except OSError as error:
            raise ClientError(f"cannot read {path}: {error.strerror or error}") from error
        body = _MultipartUpload(path, size, fields={"sha256": digest}, progress=progress)
        response = self.request(
            "POST", f"/listings/{_seg(listing)}/versions", content=body,
            headers={"Content-Type": body.content_type, "Content-Length": str(body.content_length)},
            timeout=httpx.Timeout(self._http.timeout.connect, read=max(300.0, self._http.timeout.read or 0),
                                  write=max(300.0, self._http.timeout.write or 0), pool=self._http.timeout.pool))
        return self._model(Version, _json_of(response, self.server), "version")

    def submit_version(self, listing: str, version: str) -> Version:
        return self._model(Version, self._json("POST", f"/listings/{_seg(listing)}/versions/{_seg(version)}/submit"),
                           "version")

    def yank_version(self, listing: str, version: str, reason: str) -> Version:
        return self._model(Version, self._json("POST", f"/listings/{_seg(listing)}/versions/{_seg(version)}/yank",
                                               json={"reason": reason}), "version")

    def download_version(self, listing: str, version: str, dest: Path | str, *,
                         progress: Progress | None = None) -> DownloadResult:
        """Stream an artifact to ``dest`` (through ``dest.part``, renamed when complete) and check
        its SHA-256 against ``X-Checksum-SHA256``; a mismatch removes the file and raises
        :class:`ChecksumMismatch`. The signature is returned for the caller to verify."""
        dest = Path(dest)
        url = f"/listings/{_seg(listing)}/versions/{_seg(version)}/download"
        digest = hashlib.sha256()
        received = 0
        partial: Path | None = None
        try:
            with self._http.stream("GET", url, headers={**self._auth(), "Accept": "*/*"}) as response:
                if not response.is_success:
                    response.read()
                    raise ApiError.from_response(response)
                if dest.is_dir():
                    dest = dest / _download_name(response, listing, version)
                partial = dest.with_name(dest.name + ".part")
                total = int(response.headers.get("content-length") or 0)
                dest.parent.mkdir(parents=True, exist_ok=True)
                with open(partial, "wb") as out:
                    for chunk in response.iter_bytes(CHUNK_SIZE):
                        out.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        if progress:
                            progress(received, total)
                headers = response.headers
        except httpx.TransportError as error:
            _discard(partial)
            raise ClientError(_network_message(self.server, error)) from error
        except OSError as error:
            _discard(partial)
            raise ClientError(f"cannot write {partial or dest}: {error.strerror or error}") from error
        except BaseException:
            _discard(partial)
            raise
        assert partial is not None
        actual = digest.hexdigest()
        declared = (headers.get("x-checksum-sha256") or "").strip().lower()
        if not declared:
            partial.unlink(missing_ok=True)
            raise ChecksumMismatch(f"{self.server} sent no X-Checksum-SHA256 for {listing} {version}; "
                                   "the download cannot be checked")
        if declared != actual:
            partial.unlink(missing_ok=True)
            raise ChecksumMismatch(f"checksum_mismatch: {listing} {version} has SHA-256 {actual}, "
                                   f"the store declared {declared}; the download was discarded")
        os.replace(partial, dest)
        return DownloadResult(path=dest, sha256=actual, size=received,
                              signature=headers.get("x-signature-ed25519"),
                              key_id=headers.get("x-signature-key-id"), etag=headers.get("etag"))

    def public_keys(self) -> list[PublicKey]:
        data = self._json("GET", "/keys", token="")
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise ClientError(f"unexpected key list from {self.server}; is the store a compatible version?")
        return [self._model(PublicKey, key, "public key") for key in data["keys"]]


# --- verification ------------------------------------------------------------------------

class SignatureInvalid(ClientError):
    """An artifact's Ed25519 signature is missing, from an unknown key, or does not verify."""


def verify_download(result: DownloadResult, keys: list[PublicKey]) -> PublicKey:
    """Check the store's signature over the artifact's SHA-256 with the store's published keys.

    Returns the key that verified it; raises :class:`SignatureInvalid` otherwise.
    """
    if not result.signature:
        raise SignatureInvalid("signature_missing: the store sent no X-Signature-Ed25519 header; "
                               "the download cannot be trusted")
    candidates = [k for k in keys if k.id == result.key_id] if result.key_id else list(keys)
    if not candidates:
        known = ", ".join(k.id for k in keys) or "none"
        raise SignatureInvalid(f"signature_unknown_key: signed with key {result.key_id}, "
                               f"which the store does not publish (published: {known})")
    message = signing.artifact_message(result.sha256)
    for key in candidates:
        if key.algorithm.lower() != "ed25519":
            continue
        try:
            ok = signing.verify(key.public_key, message, result.signature)
        except Exception:  # a malformed key or signature is a failed verification
            ok = False
        if ok is not False:
            return key
    raise SignatureInvalid(f"signature_invalid: the Ed25519 signature of {result.path.name} does not verify "
                           f"with key {result.key_id or 'of the store'}")


# --- helpers -----------------------------------------------------------------------------

def _discard(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)


def _download_name(response: httpx.Response, listing: str, version: str) -> str:
    """The file name the store suggests (Content-Disposition), reduced to a safe base name."""
    disposition = response.headers.get("content-disposition", "")
    match = re.search(r"filename\*=(?:UTF-8'')?([^;]+)", disposition, re.I) or \
        re.search(r'filename="?([^";]+)"?', disposition, re.I)
    name = ""
    if match:
        name = unquote(match.group(1).strip().strip('"'))
        name = re.sub(r"[^A-Za-z0-9._+-]", "_", name.replace("\\", "/").rsplit("/", 1)[-1]).lstrip(".")
    if not name:
        kind = response.headers.get("content-type", "")
        suffix = ".zip" if "zip" in kind else ".tar.gz" if "gzip" in kind or "tar" in kind else ""
        name = re.sub(r"[^A-Za-z0-9._+-]", "_", f"{listing}-{version}") + suffix
    return name


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def _seg(value: str) -> str:
    """One path segment, escaped (a slug or version never carries a slash)."""
    return quote(str(value), safe="")


def _json_of(response: httpx.Response, server: str) -> Any:
    try:
        return response.json()
    except ValueError as error:
        raise ClientError(f"{server} answered with something that is not JSON; is this a Mercato store?") from error


def _package_version() -> str:
    try:
        return version("mercato")
    except Exception:  # running from a source tree
        return "0"


class _MultipartUpload:
    """A ``multipart/form-data`` body streamed from a file, with its exact length known up front."""

    def __init__(self, path: Path, size: int, *, fields: dict[str, str], progress: Progress | None) -> None:
        self.path = path
        self.size = size
        self.progress = progress
        self.boundary = f"mercato-{secrets.token_hex(16)}"
        parts = [f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                 for name, value in fields.items()]
        filename = path.name.replace("\\", "_").replace('"', "_").replace("\r", "_").replace("\n", "_")
        parts.append(f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                     f"filename=\"{filename}\"\r\nContent-Type: {_archive_type(path)}\r\n\r\n")
        self.head = "".join(parts).encode("utf-8")
        self.tail = f"\r\n--{self.boundary}--\r\n".encode("ascii")

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    @property
    def content_length(self) -> int:
        return len(self.head) + self.size + len(self.tail)

    def __iter__(self) -> Iterator[bytes]:
        yield self.head
        sent = 0
        if self.progress:
            self.progress(0, self.size)
        with open(self.path, "rb") as handle:
            while sent < self.size:
                chunk = handle.read(min(CHUNK_SIZE, self.size - sent))
                if not chunk:
                    raise ClientError(f"{self.path} shrank while it was being uploaded")
                yield chunk  # resumes once the chunk has been handed to the connection
                sent += len(chunk)
                if self.progress:
                    self.progress(sent, self.size)
        yield self.tail


def _archive_type(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".zip"):
        return "application/zip"
    if name.endswith((".tar.gz", ".tgz")):
        return "application/gzip"
    return "application/octet-stream"
