"""Private PostgreSQL, Redis and NATS servers for fault tests (QUALITY F2, F4, F8, F9).

A fault test stops and restarts its backend, so it never uses the machine's shared
services: each server here runs from a temporary directory on a free loopback port and
is stopped by the test that started it (by its own process, never by name). A missing
binary skips the test with the reason.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

STARTUP_SECONDS = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _binary(name: str, *candidates: str) -> str:
    for candidate in (*candidates, shutil.which(name)):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip(f"{name} is not installed on this machine")


# --- PostgreSQL -----------------------------------------------------------------------------------

class PrivatePostgres:
    """One PostgreSQL cluster of its own (initdb + pg_ctl), as the ``postgres`` user when run as root
    (initdb refuses root)."""

    def __init__(self, directory: Path) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        self.pg_ctl = _binary("pg_ctl", *reversed(found))
        self.bin = Path(self.pg_ctl).parent
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(directory, "postgres")

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        done = subprocess.run([*self.as_user, *command], check=False, capture_output=True, text=True,
                              timeout=STARTUP_SECONDS)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stdout}{done.stderr}")

    def init(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync")

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c max_connections=60 "
                   "-c shared_buffers=16MB")
        self._run(self.pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.directory / "server.log"),
                  "-w", "-t", str(int(STARTUP_SECONDS)), "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast``: sessions ended with 57P01, then down; ``immediate``: killed, crash recovery at start."""
        self._run(self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return subprocess.run([*self.as_user, self.pg_ctl, "-D", str(self.data), "status"],
                              check=False, capture_output=True).returncode == 0

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.directory / "server.log").read_text()[-4000:]
        return ""


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    directory = Path(tempfile.mkdtemp(prefix="mercato-pg-"))
    server = PrivatePostgres(directory)
    try:
        server.init()
        server.start()
        yield server
    finally:
        if server.data.exists() and server.running():
            with contextlib.suppress(Exception):
                server.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)


# --- processes started directly (Redis, NATS) ---------------------------------------------------

class PrivateProcess:
    """A server binary run in the foreground as a child of the test; stop() ends that child only."""

    def __init__(self, command: list[str], *, port: int, directory: Path) -> None:
        self.command = command
        self.port = port
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.directory / "server.log", "ab")  # owned by the child
        self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, cwd=self.directory)
        log.close()
        wait_for(lambda: port_open(self.port) or self.process.poll() is not None,  # type: ignore[union-attr]
                 timeout=STARTUP_SECONDS, what=f"{self.command[0]} on port {self.port}")
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.command[0]} exited at start: {self.log()}")

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill() if kill else self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self.process = None

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.directory / "server.log").read_text(errors="replace")[-4000:]
        return ""


P = TypeVar("P", bound=PrivateProcess)


class PrivateRedis(PrivateProcess):
    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@contextlib.contextmanager
def _running(kind: type[P], binary: str, arguments: Callable[[int, Path], list[str]]) -> Iterator[P]:
    """Start ``binary`` with ``arguments(port, directory)`` in a fresh directory; stop it and
    remove the directory at the end."""
    directory = Path(tempfile.mkdtemp(prefix=f"mercato-{Path(binary).name}-"))
    port = free_port()
    server = kind([binary, *arguments(port, directory)], port=port, directory=directory)
    try:
        server.start()
        yield server
    finally:
        server.stop(kill=True)
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    with _running(PrivateRedis, _binary("redis-server"), lambda port, directory: [
            "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(directory)]) as server:
        yield server


class PrivateNats(PrivateProcess):
    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def wipe(self) -> None:
        """Empty the JetStream store (the server must be stopped): a broker restarted empty."""
        shutil.rmtree(self.directory / "store", ignore_errors=True)


@contextlib.contextmanager
def private_nats() -> Iterator[PrivateNats]:
    with _running(PrivateNats, _binary("nats-server", "/usr/sbin/nats-server"), lambda port, directory: [
            "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(directory / "store")]) as server:
        yield server
