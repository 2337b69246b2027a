"""PERF-7: embedded start and stop — ``mercato serve`` answers ``/readyz`` ≤ 2 s after start on
an existing data dir, idle RSS < 150 MB; a fresh data dir and ``serve --demo`` ≤ 5 s; stopping
``serve`` (with an agent's long poll open) or ``worker`` ≤ 5 s, without a traceback.

    python -m bench.startup [--rounds 3] [--pg-url postgresql+asyncpg://…] [--json out.json]

Every figure is a real ``python -m mercato …`` process on the embedded default (SQLite, a
temporary data dir); the clock runs from ``Popen`` to the first 200 of ``/readyz`` (polled
every 20 ms). A FastAPI hello-world started by uvicorn the same way is the yardstick of the
same run (``hello_start_s``): on a loaded machine both grow, and the ratio shows by how much
Mercato's own start-up work exceeds the interpreter's and the framework's.

Rounds, interleaved (hello, then Mercato):
1. fresh: an empty data dir (migrations and seeds run);
2. existing: the same data dir again (the schema is current: nothing to migrate); RSS at
   ready and once idle (CPU < 15 % of a core over 2 s), the process's CPU seconds to ready;
3. stop: an agent instance opens ``GET /api/v1/agent/tasks?wait=30`` and the server gets
   SIGTERM while it is open; seconds to exit, and whether stderr holds a traceback;
4. demo: ``serve --demo`` on an empty data dir: seconds to ``/readyz``; as soon as a paid
   digital listing is visible, one funded buyer's order from the POST to ``completed``
   (bar 1 s, the demo's own events still being worked off); then the whole demo catalog
   being visible (``GET /api/v1/listings`` total);
5. worker: ``mercato worker`` (embedded role on SQLite; with ``--pg-url`` also on PostgreSQL
   with Redis Streams as the broker) gets SIGTERM once running; seconds to exit.
Medians over the rounds; the per-round figures are in the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.servers import (
    DEFAULT_PG_URL,
    PYTHON,
    ROOT,
    UVICORN_SETTINGS,
    cpu_seconds,
    free_port,
    postgres_database,
    rss_bytes,
    wait_idle,
)

BARS = {"existing_s": 2.0, "fresh_s": 5.0, "demo_s": 5.0, "idle_rss_mb": 150.0, "stop_s": 5.0,
        "first_order_s": 1.0}
MB = 1024 * 1024
ADMIN = ("bench-start@mercato.test", "a start-up benchmark passphrase")
DEMO_LISTINGS_MIN = 40  # the demo catalog has about fifty published listings


def _log(message: str) -> None:
    print(f"[startup] {message}", file=sys.stderr, flush=True)


class Process:
    """One ``python -m …`` process with its stdout/stderr in a file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        full_env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}", **env}
        with open(log, "wb") as out:
            self.started = time.perf_counter()
            self.popen = subprocess.Popen([PYTHON, *args], cwd=ROOT, env=full_env, stdout=out,
                                          stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait_http(self, url: str, *, timeout: float = 120.0) -> float:
        """Seconds from start until ``url`` answers 200."""
        deadline = self.started + timeout
        with httpx.Client(timeout=2.0) as client:
            while time.perf_counter() < deadline:
                if self.popen.poll() is not None:
                    raise RuntimeError(f"exited at start:\n{self.log.read_text()[-3000:]}")
                try:
                    if client.get(url).status_code == 200:
                        return time.perf_counter() - self.started
                except httpx.TransportError:
                    pass
                time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f} s:\n{self.log.read_text()[-3000:]}")

    def wait_output(self, text: str, *, timeout: float = 120.0) -> float:
        deadline = self.started + timeout
        while time.perf_counter() < deadline:
            if text in self.log.read_text(errors="replace"):
                return time.perf_counter() - self.started
            if self.popen.poll() is not None:
                raise RuntimeError(f"exited before saying {text!r}:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"no {text!r} within {timeout:.0f} s:\n{self.log.read_text()[-3000:]}")

    def terminate(self, *, timeout: float = 60.0) -> dict[str, Any]:
        """SIGTERM; seconds to exit, the exit code and whether the output holds a traceback."""
        started = time.perf_counter()
        self.popen.send_signal(signal.SIGTERM)
        try:
            code = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            code = None
        output = self.log.read_text(errors="replace")
        return {"stop_s": round(time.perf_counter() - started, 3), "exit_code": code,
                "traceback": "Traceback (most recent call last)" in output}

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


def _serve(data_dir: Path, port: int, *extra: str, env: dict[str, str] | None = None) -> Process:
    return Process(["-m", "mercato", "serve", "--port", str(port), "--data-dir", str(data_dir), *extra],
                   {"MERCATO_DATA_DIR": str(data_dir), **(env or {})}, data_dir.parent / f"serve-{port}.log")


def _hello_start(scratch: Path) -> float:
    port = free_port()
    process = Process(["-m", "uvicorn", "bench.baselines:hello", "--host", "127.0.0.1", "--port", str(port),
                       *UVICORN_SETTINGS], {}, scratch / f"hello-{port}.log")
    try:
        return process.wait_http(f"http://127.0.0.1:{port}/hello")
    finally:
        process.terminate()


def _mercato(data_dir: Path, *args: str) -> None:
    subprocess.run([PYTHON, "-m", "mercato", *args, "--data-dir", str(data_dir)], cwd=ROOT, check=True,
                   capture_output=True, timeout=300,
                   env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "MERCATO_DATA_DIR": str(data_dir)})


def _instance_token(base: str) -> str:
    with httpx.Client(base_url=base + "/api/v1", timeout=60) as client:
        login = client.post("/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]})
        login.raise_for_status()
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        created = client.post("/instances", json={"name": "bench"}, headers=auth)
        created.raise_for_status()
        return str(created.json()["token"])


def _stop_during_long_poll(process: Process, base: str, token: str) -> dict[str, Any]:
    """Open an agent long poll (30 s), then SIGTERM the server while it waits."""
    import threading

    answered: dict[str, Any] = {}

    def poll() -> None:
        try:
            response = httpx.get(f"{base}/api/v1/agent/tasks", params={"wait": 30},
                                 headers={"Authorization": f"Bearer {token}"}, timeout=60)
            answered["status"] = response.status_code
        except httpx.HTTPError as error:
            answered["error"] = type(error).__name__

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    time.sleep(1.0)  # the poll is in the server (a request takes milliseconds on an idle store)
    stopped = process.terminate()
    thread.join(timeout=60)
    stopped["long_poll"] = answered
    return stopped


def _funded_buyer(data_dir: Path) -> str:
    """A buyer with money in the wallet, made beside the running store (same data dir)."""
    import asyncio

    from mercato.accounts import service as accounts
    from mercato.app.runtime import Runtime
    from mercato.config import Settings
    from mercato.wallet import service as wallet

    email = f"first-buyer-{uuid.uuid4().hex[:8]}@bench.test"

    async def make() -> None:
        settings = Settings(data_dir=data_dir, testing=True)
        rt = Runtime.from_settings(settings)
        try:
            async with rt.db.transaction() as session:
                user = await accounts.create_user(session, rt, email=email, password=ADMIN[1], roles=["user"])
                await wallet.credit_payment(session, payment_id=uuid.uuid4(), user_id=user.id, provider="bench",
                                            amount=100_000, currency=settings.currency)
        finally:
            await rt.close()

    asyncio.run(make())
    return email


def _first_order(client: httpx.Client, base: str, data_dir: Path, deadline: float) -> dict[str, Any]:
    """As soon as a paid digital demo listing is visible: one buyer's order, from the POST to
    ``completed`` (``?wait=30`` answers when the saga has finished), while the demo's own
    events are still being worked off."""
    listing = None
    while listing is None and time.perf_counter() < deadline:
        found = client.get(base + "/api/v1/listings", params={"price": "paid", "delivery": "digital", "limit": 1,
                                                               "facets": "false"})
        items = found.json().get("items", []) if found.status_code == 200 else []
        listing = items[0]["id"] if items else None
        if listing is None:
            time.sleep(0.1)
    if listing is None:
        return {"first_order_s": None, "first_order_status": "no paid listing"}
    email = _funded_buyer(data_dir)
    login = client.post(base + "/api/v1/auth/login", json={"email": email, "password": ADMIN[1]})
    login.raise_for_status()
    started = time.perf_counter()
    ordered = client.post(base + "/api/v1/orders", params={"wait": 30}, timeout=60, json={
        "items": [{"listing_id": listing, "delivery": "digital", "quantity": 1}]},
        headers={"Authorization": f"Bearer {login.json()['access_token']}", "Idempotency-Key": uuid.uuid4().hex})
    took = time.perf_counter() - started
    status = ordered.json().get("status") if ordered.status_code == 201 else f"http_{ordered.status_code}"
    return {"first_order_s": round(took, 3) if status == "completed" else None, "first_order_status": status}


def _demo_round(scratch: Path) -> dict[str, Any]:
    data_dir = scratch / f"demo-{uuid.uuid4().hex[:6]}"
    port = free_port()
    process = _serve(data_dir, port, "--demo")
    base = f"http://127.0.0.1:{port}"
    try:
        ready = process.wait_http(base + "/readyz", timeout=300)
        deadline = time.perf_counter() + 300
        loaded = None
        with httpx.Client(timeout=10) as client:
            first = _first_order(client, base, data_dir, deadline)
            while time.perf_counter() < deadline:
                response = client.get(base + "/api/v1/listings", params={"limit": 1, "facets": "false"})
                if response.status_code == 200 and (response.json().get("total") or 0) >= DEMO_LISTINGS_MIN:
                    loaded = time.perf_counter() - process.started
                    break
                time.sleep(0.1)
        return {"ready_s": round(ready, 3), "catalog_visible_s": round(loaded, 3) if loaded else None, **first,
                **{f"stop_{k}": v for k, v in process.terminate().items()}}
    finally:
        process.kill()


def _worker_round(data_dir: Path, env: dict[str, str]) -> dict[str, Any]:
    log = data_dir.parent / f"worker-{uuid.uuid4().hex[:6]}.log"
    process = Process(["-m", "mercato", "worker", "--data-dir", str(data_dir)],
                      {"MERCATO_DATA_DIR": str(data_dir), **env}, log)
    try:
        running = process.wait_output("running (")
        time.sleep(1.0)
        return {"running_s": round(running, 3), **process.terminate()}
    finally:
        process.kill()


def _compile_bytecode() -> None:
    """Byte-compile mercato's modules once, as installing a package does (pip compiles at
    install; Python writes them at the first import). Without this a machine that sets
    PYTHONDONTWRITEBYTECODE (this one does) compiles ~360 modules at every start (~0.3 s),
    which no installed store pays."""
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(ROOT / "src" / "mercato")], check=True,
                   capture_output=True, timeout=300)


def run(*, rounds: int = 3, pg_url: str | None = DEFAULT_PG_URL) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    _compile_bytecode()
    with tempfile.TemporaryDirectory(prefix="mercato-bench-start-") as directory:
        scratch = Path(directory)
        for number in range(1, rounds + 1):
            one: dict[str, Any] = {"hello_start_s": round(_hello_start(scratch), 3)}
            data_dir = scratch / f"store-{number}"
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            fresh = _serve(data_dir, port)
            try:
                one["fresh_s"] = round(fresh.wait_http(base + "/readyz"), 3)
                one["fresh_stop"] = fresh.terminate()
            finally:
                fresh.kill()
            _mercato(data_dir, "createsuperuser", "--email", ADMIN[0], "--password", ADMIN[1])
            existing = _serve(data_dir, port)
            try:
                one["existing_s"] = round(existing.wait_http(base + "/readyz"), 3)
                one["existing_cpu_s"] = round(cpu_seconds(existing.pid), 3)
                one["ready_rss_mb"] = round(rss_bytes(existing.pid) / MB, 1)
                wait_idle(existing.pid, timeout=60)
                one["idle_rss_mb"] = round(rss_bytes(existing.pid) / MB, 1)
                one["stop"] = _stop_during_long_poll(existing, base, _instance_token(base))
            finally:
                existing.kill()
            one["worker_sqlite"] = _worker_round(data_dir, {})
            one["demo"] = _demo_round(scratch)
            if pg_url:
                with postgres_database(pg_url) as url:
                    env = {"MERCATO_DATABASE_URL": url, "MERCATO_BROKER_URL": "redis://127.0.0.1:6379/0",
                           "MERCATO_BUS_QUEUE": f"bench-start-{uuid.uuid4().hex[:8]}",
                           "MERCATO_REDIS_URL": "redis://127.0.0.1:6379/0",
                           "MERCATO_REDIS_NAMESPACE": f"bench-start-{uuid.uuid4().hex[:8]}"}
                    pg_dir = scratch / f"pg-{number}"
                    subprocess.run([PYTHON, "-m", "mercato", "migrate", "--data-dir", str(pg_dir)], cwd=ROOT,
                                   check=True, capture_output=True, timeout=300,
                                   env={**os.environ, "PYTHONPATH": str(ROOT / "src"), **env})
                    one["worker_postgresql_redis"] = _worker_round(pg_dir, env)
            runs.append(one)
            _log(f"round {number}/{rounds}: hello {one['hello_start_s']:.2f} s; fresh {one['fresh_s']:.2f} s, "
                 f"existing {one['existing_s']:.2f} s ({one['existing_cpu_s']:.2f} s CPU), idle RSS "
                 f"{one['idle_rss_mb']:.0f} MB, stop with a long poll {one['stop']['stop_s']:.2f} s, demo ready "
                 f"{one['demo']['ready_s']:.2f} s (catalog at {one['demo']['catalog_visible_s']} s), worker stop "
                 f"{one['worker_sqlite']['stop_s']:.2f} s"
                 + (f" / {one['worker_postgresql_redis']['stop_s']:.2f} s (PostgreSQL + Redis)"
                    if "worker_postgresql_redis" in one else ""))

    def median(path: str) -> float:
        values = []
        for one in runs:
            value: Any = one
            for part in path.split("."):
                value = value[part]
            values.append(value)
        return round(statistics.median(values), 3)

    stops = [one["stop"]["stop_s"] for one in runs] + [one["worker_sqlite"]["stop_s"] for one in runs] + \
        [one["worker_postgresql_redis"]["stop_s"] for one in runs if "worker_postgresql_redis" in one] + \
        [one["fresh_stop"]["stop_s"] for one in runs] + [one["demo"]["stop_stop_s"] for one in runs]
    tracebacks = sum(bool(one["stop"]["traceback"]) + bool(one["worker_sqlite"]["traceback"])
                     + bool(one.get("worker_postgresql_redis", {}).get("traceback"))
                     + bool(one["demo"]["stop_traceback"])
                     for one in runs)
    summary = {"hello_start_s": median("hello_start_s"), "fresh_s": median("fresh_s"),
               "existing_s": median("existing_s"), "existing_cpu_s": median("existing_cpu_s"),
               "existing_ratio_to_hello": round(statistics.median(o["existing_s"] / o["hello_start_s"]
                                                                  for o in runs), 2),
               "ready_rss_mb": median("ready_rss_mb"), "idle_rss_mb": median("idle_rss_mb"),
               "demo_ready_s": median("demo.ready_s"), "stop_long_poll_s": median("stop.stop_s"),
               "worker_stop_s": median("worker_sqlite.stop_s"), "max_stop_s": max(stops), "tracebacks": tracebacks}
    orders = [o["demo"]["first_order_s"] for o in runs]
    summary["demo_first_order_s"] = None if None in orders else round(statistics.median(orders), 3)
    visible = [o["demo"]["catalog_visible_s"] for o in runs if o["demo"]["catalog_visible_s"] is not None]
    summary["demo_catalog_visible_s"] = round(statistics.median(visible), 3) if visible else None
    if any("worker_postgresql_redis" in o for o in runs):
        summary["worker_stop_postgresql_redis_s"] = median("worker_postgresql_redis.stop_s")
    perf7 = {"pass": bool(summary["existing_s"] <= BARS["existing_s"] and summary["idle_rss_mb"] < BARS["idle_rss_mb"]
                          and summary["fresh_s"] <= BARS["fresh_s"] and summary["demo_ready_s"] <= BARS["demo_s"]
                          and summary["max_stop_s"] <= BARS["stop_s"] and not tracebacks
                          and summary["demo_first_order_s"] is not None
                          and summary["demo_first_order_s"] <= BARS["first_order_s"])}
    return {"rounds": rounds, "bars": BARS, "summary": summary, "runs": runs, "PERF-7": perf7}


def report_lines(results: dict[str, Any]) -> list[str]:
    s = results["summary"]
    return [
        f"PERF-7 ready={s['existing_s']:.2f}s bar={BARS['existing_s']:g}s idle_rss={s['idle_rss_mb']:.0f}MB "
        f"bar=<{BARS['idle_rss_mb']:g}MB fresh={s['fresh_s']:.2f}s demo={s['demo_ready_s']:.2f}s "
        f"bar={BARS['fresh_s']:g}s stop<={s['max_stop_s']:.2f}s bar={BARS['stop_s']:g}s "
        f"{'PASS' if results['PERF-7']['pass'] else 'FAIL'}",
        f"  existing data dir {s['existing_s']:.2f} s to /readyz ({s['existing_cpu_s']:.2f} s CPU; "
        f"{s['existing_ratio_to_hello']:.1f} × a FastAPI hello's {s['hello_start_s']:.2f} s start in the same run), "
        f"RSS {s['ready_rss_mb']:.0f} MB at ready; demo catalog visible at {s['demo_catalog_visible_s']} s, "
        f"its first paid order completed in {s['demo_first_order_s']} s (bar {BARS['first_order_s']:g} s); "
        f"stop with an open long poll {s['stop_long_poll_s']:.2f} s, worker {s['worker_stop_s']:.2f} s"
        + (f" (PostgreSQL + Redis {s['worker_stop_postgresql_redis_s']:.2f} s)"
           if "worker_stop_postgresql_redis_s" in s else "")
        + f"; tracebacks at stop: {s['tracebacks']}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="an admin URL of the PostgreSQL server")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = parser.parse_args()
    results = run(rounds=args.rounds, pg_url=None if args.skip_postgres else args.pg_url)
    for line in report_lines(results):
        print(line)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
