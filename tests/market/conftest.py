"""Market test fixtures: the store under test may reach 127.0.0.1 (the SSRF allowlist, as in
the webhook tests), and its ``market.sync`` sweep is left out of the embedded bus so the
tests drive syncing themselves (``sweep.sync_due`` / ``POST …/sync``) and nothing races them."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from mercato.bus import scheduler
from mercato.config import Settings
from mercato.market import handlers  # noqa: F401  (declares the sweep taken out below)
from tests.webhooks.conftest import Received, Receiver


@pytest.fixture(autouse=True)
def _no_background_market_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(scheduler.SWEEPS, "market.sync")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"outbound_allowed_hosts": ["127.0.0.1"], "market_timeout_seconds": 3.0,
                                       "market_sync_interval_seconds": 60.0})


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
