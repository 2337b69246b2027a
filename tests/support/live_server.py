"""The store served for real: uvicorn on a free local port, for tests that need a real HTTP
connection (streams, a browser) rather than httpx's in-process transport."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import uvicorn

from mercato.app import create_app
from mercato.app.runtime import Runtime

WAIT = 10.0  # the longest uvicorn may take to start or to shut down


@contextlib.asynccontextmanager
async def serve(runtime: Runtime) -> AsyncIterator[str]:
    """uvicorn serving create_app(runtime) (its lifespan starts the embedded bus) on a free port."""
    app = create_app(runtime=runtime)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_config=None, access_log=False,
                                           timeout_graceful_shutdown=2, timeout_keep_alive=1))
    task = asyncio.create_task(server.serve(sockets=[sock]), name="uvicorn")
    try:
        async with asyncio.timeout(WAIT):
            while not server.started:
                assert not task.done(), "uvicorn did not start"
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), WAIT)
        except TimeoutError:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            raise AssertionError("uvicorn did not shut down") from None
        finally:
            sock.close()
