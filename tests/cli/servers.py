"""A real ``mercato serve`` subprocess for the command-line tests.

Its output goes to a file, never to a pipe nobody reads: a full pipe (64 KiB of logs from
the demo and the bus) blocks the server mid-write, so it stops answering and cannot exit.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

MERCATO = [sys.executable, "-m", "mercato"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any MERCATO_ setting of the developer's, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERCATO_")}
    env.update(extra)
    return env


@contextmanager
def serving(*args: str, env: dict[str, str], log_path: Path, ready_within: float = 60.0) -> Iterator[str]:
    """Run ``mercato serve <args>`` on a free port until the block ends; yields its base URL."""
    port = free_port()
    with log_path.open("w") as log:
        process = subprocess.Popen([*MERCATO, "serve", *args, "--port", str(port)], env=env, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_within
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, _tail(log_path)
            assert time.monotonic() < deadline, f"server did not become ready\n{_tail(log_path)}"
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(f"server did not stop within 30 s of SIGTERM\n{_tail(log_path)}") from None


def _tail(log_path: Path, size: int = 4000) -> str:
    return log_path.read_text(errors="replace")[-size:]
