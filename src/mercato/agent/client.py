"""The agent's side of the ``/agent/*`` API, and resumable artifact downloads.

Asynchronous (the agent heartbeats while a task runs), on the same error model as the
publisher CLI's :class:`~mercato.client.MercatoClient`: a non-2xx answer is
:class:`~mercato.client.ApiError` read from the problem document, a network failure is
:class:`~mercato.client.ClientError` with a readable message.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

import httpx

from mercato import __version__
from mercato.client.errors import ApiError, ClientError, network_message
from mercato.client.http import API_PREFIX, normalize_server
from mercato.client.schemas import PublicKey

POLL_SLACK = 15.0  # seconds a long poll may take beyond what it asked the server to wait

DownloadProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class Downloaded:
    """A complete download: ``path`` (the ``.part`` file, now whole) and what the store said about it."""

    path: Path
    size: int
    resumed_from: int
    declared_sha256: str | None
    signature: str | None
    key_id: str | None


class AgentClient:
    """Talks to one store with an instance token."""

    def __init__(self, server: str, token: str, *, timeout: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.server = normalize_server(server)
        self.timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=self.server + API_PREFIX, transport=transport, follow_redirects=False,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={"Authorization": f"Bearer {token}", "User-Agent": f"mercato-agent/{__version__}",
                     "Accept": "application/json, application/problem+json"})

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise ClientError(network_message(self.server, error)) from error
        if not response.is_success:
            raise ApiError.from_response(response)
        return response

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as error:
            raise ClientError(f"{self.server} answered {method} {path} with something that is not JSON; "
                              "is this a Mercato store?") from error

    # -- the agent protocol (API.md "Agent") --

    async def heartbeat(self, body: dict[str, Any]) -> dict[str, Any]:
        data = await self._json("POST", "/agent/heartbeat", json=body)
        return data if isinstance(data, dict) else {}

    async def next_tasks(self, wait: float, *, in_flight: bool = False) -> list[dict[str, Any]]:
        """Tasks for this instance (``{"items": [...]}``), waiting up to ``wait`` seconds for one;
        with ``in_flight``, the ones already handed out and not finished (after a restart)."""
        params: dict[str, Any] = {"in_flight": "true"} if in_flight else {"wait": int(wait)}
        data = await self._json("GET", "/agent/tasks", params=params,
                                timeout=httpx.Timeout(wait + POLL_SLACK, connect=min(self.timeout, 10.0)))
        items = data.get("items") if isinstance(data, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) and isinstance(i.get("id"), str)
                                                  for i in items):
            raise ClientError(f"unexpected task list from {self.server}; is the store a compatible version?")
        return items

    async def progress(self, task_id: str, body: dict[str, Any]) -> dict[str, Any]:
        data = await self._json("POST", f"/agent/tasks/{task_id}/progress", json=body)
        return data if isinstance(data, dict) else {}

    async def result(self, task_id: str, body: dict[str, Any]) -> dict[str, Any]:
        data = await self._json("POST", f"/agent/tasks/{task_id}/result", json=body)
        return data if isinstance(data, dict) else {}

    async def public_keys(self) -> list[PublicKey]:
        data = await self._json("GET", "/keys")
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise ClientError(f"unexpected key list from {self.server}; is the store a compatible version?")
        return [PublicKey.model_validate(key) for key in data["keys"] if isinstance(key, dict)]

    # -- downloads --

    def artifact_url(self, url: str) -> str:
        """A download URL from a task, always on the configured store: the instance token goes
        nowhere else. An absolute URL's origin is replaced by the store's (it may differ
        behind a proxy that rewrites the scheme, host or port)."""
        parts, base = urlsplit(url), urlsplit(self.server)
        if not parts.path.startswith("/"):
            path = f"{base.path}{API_PREFIX}/{parts.path}"
        elif base.path and not parts.path.startswith(base.path + "/"):
            path = base.path + parts.path  # a store under a path prefix
        else:
            path = parts.path
        return urlunsplit((base.scheme, base.netloc, path, parts.query, ""))

    async def download(self, url: str, part: Path, *, progress: DownloadProgress | None = None) -> Downloaded:
        """Fetch ``url`` into ``part``, resuming from what ``part`` already holds (HTTP Range).

        A ``part.etag`` file beside it remembers the validator of the bytes already there, so
        a resumed request carries ``If-Range``: if the file changed on the store, the answer is
        the whole file and the download starts over."""
        etag_file = part.with_name(part.name + ".etag")
        have, etag = await asyncio.to_thread(_resume_point, part, etag_file)
        headers = {"Accept": "*/*", "Accept-Encoding": "identity"}  # byte ranges of the file itself
        if have and etag:
            headers["Range"] = f"bytes={have}-"
            headers["If-Range"] = etag
        else:
            have = 0
        try:
            async with self._http.stream("GET", self.artifact_url(url), headers=headers) as response:
                if response.status_code == 416 and have:
                    await response.aread()
                    # the store's file is shorter than ours: start over
                    await asyncio.to_thread(part.unlink, missing_ok=True)
                    etag_file.unlink(missing_ok=True)
                    return await self.download(url, part, progress=progress)
                if not response.is_success:
                    await response.aread()
                    raise ApiError.from_response(response)
                resumed = response.status_code == 206 and _range_start(response) == have
                start = have if resumed else 0
                total = _total_size(response, start)
                new_etag = response.headers.get("etag", "")
                if new_etag:
                    etag_file.write_text(new_etag)
                else:
                    etag_file.unlink(missing_ok=True)
                done = start
                out = await asyncio.to_thread(open, part, "r+b" if resumed else "wb")
                try:
                    if resumed:
                        out.seek(start)
                        out.truncate()
                    async for chunk in response.aiter_bytes():  # as received: a cut keeps every byte that came
                        await asyncio.to_thread(out.write, chunk)
                        done += len(chunk)
                        if progress:
                            progress(done, total)
                    out.flush()
                    await asyncio.to_thread(os.fsync, out.fileno())
                finally:
                    out.close()
                declared = (response.headers.get("x-checksum-sha256") or "").strip().lower() or None
                return Downloaded(path=part, size=done, resumed_from=start, declared_sha256=declared,
                                  signature=response.headers.get("x-signature-ed25519"),
                                  key_id=response.headers.get("x-signature-key-id"))
        except httpx.TransportError as error:
            raise ClientError(network_message(self.server, error)) from error


def _resume_point(part: Path, etag_file: Path) -> tuple[int, str]:
    """How many bytes of ``part`` are already here, and the validator they were fetched with."""
    have = part.stat().st_size if part.exists() else 0
    etag = etag_file.read_text().strip() if have and etag_file.exists() else ""
    return have, etag


def _range_start(response: httpx.Response) -> int | None:
    value = response.headers.get("content-range", "")  # bytes a-b/size
    try:
        return int(value.split(" ", 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return None


def _total_size(response: httpx.Response, start: int) -> int:
    value = response.headers.get("content-range", "")
    if "/" in value and value.rsplit("/", 1)[1].isdigit():
        return int(value.rsplit("/", 1)[1])
    length = response.headers.get("content-length", "")
    return start + int(length) if length.isdigit() else 0

