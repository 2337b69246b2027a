"""Local HTTP servers on 127.0.0.1 standing in for the outside world (the only place the
tests send anything): ``Receiver`` records what a webhook sender posts and answers as told;
``FeedServer`` plays another store whose catalogue feed the market syncs."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A minimal HTTP/1.1 server: records each request, answers from ``script`` (then ``default``)."""

    requests: list[Received] = field(default_factory=list)
    script: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)
    default: tuple[int, dict[str, str]] = (200, {})
    port: int = 0
    server: asyncio.Server | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, *statuses: int | tuple[int, dict[str, str]]) -> None:
        for status in statuses:
            self.script.append(status if isinstance(status, tuple) else (status, {}))

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, path, _ = (await reader.readline()).decode("latin-1").split(" ", 2)
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Received(method, path, headers, body))
            status, extra = self.script.popleft() if self.script else self.default
            content = f"status {status}".encode()
            head = [f"HTTP/1.1 {status} Whatever", f"Content-Length: {len(content)}", "Connection: close",
                    *(f"{k}: {v}" for k, v in extra.items())]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + content)
            await writer.drain()
        finally:
            writer.close()

    async def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.requests) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"the receiver got {len(self.requests)} requests, expected {count}")
            await asyncio.sleep(0.05)
        return self.requests


@dataclass
class FeedServer(Receiver):
    """The webhook tests' local HTTP server standing in for another store: answers from
    ``answers`` (status, headers, JSON body), then 404; records each request."""

    answers: deque[tuple[int, dict[str, str], bytes]] = field(default_factory=deque)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, status: int, body: Any = b"", **headers: str) -> None:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.answers.append((status, {k.replace("_", "-"): v for k, v in headers.items()}, content))

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, path, _ = (await reader.readline()).decode("latin-1").split(" ", 2)
            headers = dict(line.decode("latin-1").split(":", 1) for line in await _header_lines(reader))
            self.requests.append(Received(method, path, {k.strip().lower(): v.strip() for k, v in headers.items()},
                                          b""))
            status, extra, content = self.answers.popleft() if self.answers else (404, {}, b"")
            head = [f"HTTP/1.1 {status} Whatever", f"Content-Length: {len(content)}", "Connection: close",
                    "Content-Type: application/json", *(f"{k}: {v}" for k, v in extra.items())]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + content)
            await writer.drain()
        finally:
            writer.close()


async def _header_lines(reader: asyncio.StreamReader) -> list[bytes]:
    lines = []
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        lines.append(line)
    return lines


@pytest.fixture
async def feed_server() -> AsyncIterator[FeedServer]:
    server = FeedServer()
    await server.start()
    yield server
    await server.stop()
