"""Shared plumbing of the HTTP benchmarks: server processes, a PostgreSQL database of their
own, a prepared Mercato store, and what ``/proc`` says about a process (CPU time, RSS).

Every server is a real ``uvicorn`` process with one worker and the same settings
(``--log-level warning --no-access-log``, uvicorn's default loop and HTTP parser), on a
free port of 127.0.0.1, so a baseline and Mercato differ only in the application.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DEFAULT_PG_URL = os.environ.get("BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
UVICORN_SETTINGS = ["--workers", "1", "--log-level", "warning", "--no-access-log"]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def round_ratios(mercato: list[dict[str, float]], baseline: list[dict[str, float]], key: str) -> list[float]:
    """Per-round ratios mercato ÷ baseline of ``key``: the two were measured back to back in
    each round, so each ratio sees the same neighbours. The figure is their median — never
    median(mercato) ÷ median(baseline), which pairs one target's good round with the other's
    bad one (PERF-1 once printed 1.16 where every round gave about 0.5)."""
    return [round(m[key] / b[key], 3) if b[key] else 0.0 for m, b in zip(mercato, baseline, strict=True)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- /proc ----------------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (its own threads; uvicorn with one worker
    serves in the process it was started as)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14, 15)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def wait_idle(pid: int, *, busy: float = 0.15, window: float = 2.0, timeout: float = 300.0) -> float:
    """Wait until a process uses less than ``busy`` of a core over ``window`` seconds (a fresh
    Mercato store's embedded bus first delivers the events the demo loader wrote); returns
    the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = cpu_seconds(pid)
        time.sleep(window)
        if (cpu_seconds(pid) - before) / window < busy:
            break
    return time.monotonic() - started


class RssSampler:
    """Samples a process's RSS every ``interval`` seconds in a thread, while in a ``with``."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        self.pid, self.interval = pid, interval
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(rss_bytes(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self.before = rss_bytes(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(rss_bytes(self.pid))
        self.after = self.samples[-1]

    @property
    def peak(self) -> int:
        return max(self.samples, default=self.before)

    @property
    def growth(self) -> int:
        return self.peak - self.before


# --- server processes -----------------------------------------------------------------------------

@dataclass
class Server:
    """One uvicorn process serving ``target`` (``module:attr``)."""

    name: str
    target: str
    env: dict[str, str] = field(default_factory=dict)
    factory: bool = False
    ready_path: str = "/"
    port: int = field(default_factory=free_port)
    log_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"bench-{self.name}-{self.port}.log"

    def start(self, timeout: float = 300.0) -> Server:
        command = [PYTHON, "-m", "uvicorn", self.target, "--host", "127.0.0.1", "--port", str(self.port),
                   *UVICORN_SETTINGS, *(["--factory"] if self.factory else [])]
        env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}", **self.env}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_path.read_text()[-4000:]}")
            try:
                httpx.get(self.base_url + self.ready_path, timeout=2.0)
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer within {timeout}s:\n{self.log_path.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


@contextmanager
def running(*servers: Server) -> Iterator[tuple[Server, ...]]:
    started: list[Server] = []
    try:
        for server in servers:
            started.append(server.start())
        yield servers
    finally:
        for server in reversed(started):
            server.stop()


# --- PostgreSQL -----------------------------------------------------------------------------------

async def _admin(url: str, statement: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@contextmanager
def postgres_database(admin_url: str = DEFAULT_PG_URL, prefix: str = "mercato_bench") -> Iterator[str]:
    """A new, empty database on the server of ``admin_url``; dropped afterwards. Yields its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = make_url(admin_url).render_as_string(hide_password=False)
    asyncio.run(_admin(admin, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """The same database as a plain ``postgresql://`` DSN for asyncpg."""
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


# --- a Mercato store --------------------------------------------------------------------------------

@dataclass
class Store:
    """A migrated store with the demo catalog: its settings as environment variables."""

    database_url: str | None  # None: the embedded SQLite file in data_dir
    data_dir: Path
    warnings: list[str] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        env = {"MERCATO_DATA_DIR": str(self.data_dir)}
        if self.database_url:
            env["MERCATO_DATABASE_URL"] = self.database_url
        return env

    def mercato(self, *args: str, timeout: float = 900) -> str:
        result = subprocess.run([PYTHON, "-m", "mercato", *args], cwd=ROOT, capture_output=True, text=True,
                                timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT / "src"), **self.env})
        if result.returncode != 0:
            raise RuntimeError(f"mercato {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
        return result.stdout

    def server(self, name: str, **env: str) -> Server:
        return Server(name, "mercato.app:create_app", env={**self.env, **env}, factory=True, ready_path="/readyz",
                      log_dir=self.data_dir)


    def published_count(self) -> int:
        url = self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'mercato.db'}"

        async def count() -> int:
            engine = create_async_engine(url)
            try:
                async with engine.connect() as connection:
                    return int((await connection.execute(
                        text("SELECT count(*) FROM listings WHERE status = 'published'"))).scalar_one())
            finally:
                await engine.dispose()

        return asyncio.run(count())

    def wait_bus_drained(self, timeout: float = 900.0) -> float:
        """Wait until the store's bus has relayed every outbox event and finished every
        delivery (what the demo loader and the benchmark's own set-up wrote); returns the
        seconds waited. Asked of the database: a CPU-idle test misreads a starved process."""
        url = self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'mercato.db'}"

        async def backlog() -> int:
            engine = create_async_engine(url)
            try:
                async with engine.connect() as connection:
                    pending = (await connection.execute(text(
                        "SELECT count(*) FROM event_deliveries WHERE state = 'pending'"))).scalar_one()
                    unrelayed = (await connection.execute(text(
                        "SELECT count(*) FROM outbox WHERE relayed_at IS NULL"))).scalar_one()
                    return int(pending) + int(unrelayed)
            finally:
                await engine.dispose()

        started = time.monotonic()
        while (left := asyncio.run(backlog())) and time.monotonic() - started < timeout:
            time.sleep(2)
        if left:  # measuring on top of a backlog would time the backlog: fail loudly
            raise RuntimeError(f"the bus still had {left} events to relay or deliver after {timeout:.0f} s")
        return time.monotonic() - started

    def load_demo(self) -> None:
        """``mercato demo``. Listings are published one by one before the demo reviews are
        written; if only that last step fails, the catalog is usable for the benchmarks
        (without ratings), and the failure is kept in ``warnings``."""
        try:
            self.mercato("demo")
        except RuntimeError as error:
            published = self.published_count()
            if published < 10:
                raise
            last = str(error).strip().splitlines()
            self.warnings.append(f"`mercato demo` failed after publishing {published} listings (the catalog has "
                                 f"no ratings): {next((t for t in reversed(last) if 'Error' in t), last[-1])[:300]}")
            print(f"warning: {self.warnings[-1]}", file=sys.stderr)


@contextmanager
def demo_store(database: str = "postgresql", pg_url: str = DEFAULT_PG_URL) -> Iterator[Store]:
    """A fresh store (``mercato migrate`` + ``mercato demo``) on PostgreSQL or SQLite, removed after."""
    with tempfile.TemporaryDirectory(prefix="mercato-bench-") as directory:
        data_dir = Path(directory)
        if database == "sqlite":
            store = Store(None, data_dir)
            store.mercato("migrate")
            store.load_demo()
            yield store
            return
        with postgres_database(pg_url) as url:
            store = Store(url, data_dir)
            store.mercato("migrate")
            store.load_demo()
            yield store
