"""A typed HTTP client for a Mercato store: the publisher CLI and the install agent use it.

Errors come as :mod:`mercato.client.errors`, answers as :mod:`mercato.client.schemas`;
uploads and downloads stream from and to disk (:mod:`mercato.client.transfer`).
"""

from __future__ import annotations

import hashlib
import os
import re
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from mercato.client.errors import ApiError, ChecksumMismatch, ClientError, network_message
from mercato.client.schemas import CreatedToken, DownloadResult, Listing, PublicKey, TokenPair, User, Version
from mercato.client.transfer import CHUNK_SIZE, MultipartUpload, Progress, discard, download_name, file_sha256

API_PREFIX = "/api/v1"
MAX_PAGES = 100

M = TypeVar("M", bound=BaseModel)


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
            raise ClientError(network_message(self.server, error)) from error
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
        body = MultipartUpload(path, size, fields={"sha256": digest}, progress=progress)
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
                    dest = dest / download_name(response, listing, version)
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
            discard(partial)
            raise ClientError(network_message(self.server, error)) from error
        except OSError as error:
            discard(partial)
            raise ClientError(f"cannot write {partial or dest}: {error.strerror or error}") from error
        except BaseException:
            discard(partial)
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
