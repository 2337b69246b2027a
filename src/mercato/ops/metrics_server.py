"""A small HTTP server for processes without the API (``mercato worker``, ``mercato scheduler``):
``GET /metrics`` (Prometheus, the database gauges read at each scrape) and ``GET /healthz``
(liveness: the process's event loop answers). Started when ``MERCATO_METRICS_PORT`` is set."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mercato.kit.metrics import REGISTRY

READ_TIMEOUT_SECONDS = 5.0
MAX_HEAD_BYTES = 8192


class MetricsServer:
    def __init__(self, host: str, port: int, *, before_scrape: Callable[[], Awaitable[object]] | None = None) -> None:
        self.host, self.port = host, port
        self.before_scrape = before_scrape
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port, limit=MAX_HEAD_BYTES)
        if self.port == 0:  # an ephemeral port (tests): report the one taken
            self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_SECONDS)
            method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
            path = rest.split(" ", 1)[0].split("?", 1)[0]
            status, body, kind = await self._answer(method, path)
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
                         "Connection: close\r\n\r\n".encode("latin-1") + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError,
                UnicodeDecodeError):
            pass  # a client that sent no request, or too much: close
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, method: str, path: str) -> tuple[str, bytes, str]:
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", b"", "text/plain"
        if path == "/healthz":
            return "200 OK", b'{"status":"ok"}', "application/json"
        if path == "/metrics":
            if self.before_scrape is not None:
                await self.before_scrape()
            return "200 OK", generate_latest(REGISTRY), CONTENT_TYPE_LATEST
        return "404 Not Found", b"", "text/plain"
