"""Where a completed order's work goes: SQL statements and transactions per order, and a
closed-loop run of the real server for CPU, rate and latency (optionally under py-spy).

    python -m bench.saga_profile count [--orders 40] [--concurrency 1] [--pg-url …]
    python -m bench.saga_profile load [--seconds 15] [--concurrency 16] [--py-spy out.raw]

``count`` runs the store in this process (the app with its embedded bus, httpx's ASGI
transport), places orders with ``?wait=30`` (``--concurrency`` buyers at once), waits until the bus owes
nothing, and counts every statement the engines ran (SQLAlchemy's ``before_cursor_execute``)
by the asyncio task that ran it (request, relay, delivery of a subscriber, observer) and by
statement shape. ``load`` is PERF-4's saga phase alone (bench/checkout.py) on a fresh store.
Neither has a bar: they explain PERF-4's figures (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import subprocess
import sys
import time
from collections import Counter
from typing import Any

from bench.checkout import _closed_loop, _make_buyers, _mercato_purchase, _paid_digital_listings, _purchases, _sign_in
from bench.servers import DEFAULT_PG_URL, cpu_seconds, demo_store, running

PY_SPY = "/work/main/.venv/bin/py-spy"


def _shape(statement: str) -> str:
    text = re.sub(r"\s+", " ", statement).strip()
    text = re.sub(r"\(\$\d+(::\w+)?(, \$\d+(::\w+)?)*\)", "(…)", text)
    return text[:110]


def _who() -> str:
    from mercato.bus.context import _current

    task = asyncio.current_task()
    name = task.get_name() if task is not None else "-"
    if name.startswith(("bus:", "sweep:")):
        return name
    deliverer = _delivering.get()
    if deliverer:
        return f"step {deliverer}"
    return "request" if _current.get() is None else name


_delivering: Any = None


def _count(orders: int, pg_url: str, concurrency: int) -> None:
    with demo_store("postgresql", pg_url) as store:
        listings = asyncio.run(_paid_digital_listings(store))
        buyers = asyncio.run(_make_buyers(store, orders, funds=10_000_000))
        asyncio.run(_count_in(store, listings, buyers, orders, concurrency))


async def _count_in(store: Any, listings: Any, buyers: Any, orders: int, concurrency: int) -> None:
    import contextvars

    import httpx
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from mercato.app import create_app
    from mercato.app.runtime import Runtime
    from mercato.bus import delivery
    from mercato.bus.service import wait_idle
    from mercato.config import Settings

    global _delivering
    _delivering = contextvars.ContextVar("delivering", default="")
    original = delivery.Deliverer.deliver

    async def deliver(self, subscriber_name, event_id):  # type: ignore[no-untyped-def]
        token = _delivering.set(subscriber_name)
        try:
            return await original(self, subscriber_name, event_id)
        finally:
            _delivering.reset(token)

    delivery.Deliverer.deliver = deliver  # type: ignore[method-assign]

    if True:
        settings = Settings(data_dir=store.data_dir, database_url=store.database_url)
        runtime = Runtime.from_settings(settings)
        app = create_app(runtime=runtime)
        counting = False
        statements: Counter[tuple[str, str]] = Counter()
        by_who: Counter[str] = Counter()
        begins: Counter[str] = Counter()

        def on_execute(_conn, _cursor, statement, _params, _context, _many):  # type: ignore[no-untyped-def]
            if counting:
                who = _who()
                by_who[who] += 1
                statements[(who, _shape(statement))] += 1

        def on_begin(_conn):  # type: ignore[no-untyped-def]
            if counting:
                begins[_who()] += 1

        import asyncpg

        prepares: Counter[str] = Counter()
        original_prepare = asyncpg.Connection.prepare

        async def prepare(self, query, **kwargs):  # type: ignore[no-untyped-def]
            if counting:
                prepares[_who()] += 1
            return await original_prepare(self, query, **kwargs)

        asyncpg.Connection.prepare = prepare  # type: ignore[method-assign]
        event.listen(Engine, "before_cursor_execute", on_execute)
        event.listen(Engine, "begin", on_begin)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=60) as client:
                await wait_idle(runtime.db, app.state.bus.registry, timeout=600)
                for buyer in buyers:
                    response = await client.post("/api/v1/auth/login", json={"email": buyer.email,
                                                                              "password": "bench buyer password 1"})
                    buyer.token = response.json()["access_token"]
                await wait_idle(runtime.db, app.state.bus.registry, timeout=600)
                work = _purchases(buyers, listings)[:orders]
                counting = True
                started = time.perf_counter()
                outcomes: Counter[str] = Counter()
                queue = list(reversed(work))

                async def buy() -> None:
                    while queue:
                        buyer, listing, price = queue.pop()
                        outcomes[await _mercato_purchase(client, buyer, listing, price)] += 1

                await asyncio.gather(*(buy() for _ in range(concurrency)))
                await wait_idle(runtime.db, app.state.bus.registry, timeout=600)
                counting = False
                elapsed = time.perf_counter() - started
        await runtime.close()
    done = max(1, sum(outcomes.values()))  # per order placed (each completes once the bus is idle)
    print(f"{outcomes.get('completed', 0)} of {orders} orders answered completed within ?wait=30 "
          f"({dict(outcomes)}); bus idle after {elapsed:.1f} s")
    print(f"statements per order: {sum(by_who.values()) / done:.1f}; "
          f"transactions (BEGIN) per order: {sum(begins.values()) / done:.1f}; statements prepared (a round trip "
          f"each) per order: {sum(prepares.values()) / done:.1f}; "
          f"distinct statements: {len({shape for _, shape in statements})}")
    for who, count in by_who.most_common():
        print(f"  {count / done:7.2f} stmts {begins[who] / done:5.2f} txns  {who}")
    print("by statement:")
    for (who, shape), count in statements.most_common(60):
        print(f"  {count / done:6.2f}  {who[:28]:28}  {shape}")


def _load(seconds: float, concurrency: int, pg_url: str, py_spy: str | None) -> None:
    with demo_store("postgresql", pg_url) as store:
        listings = asyncio.run(_paid_digital_listings(store))
        count = max(1, int(seconds * 60 / len(listings)) + 1)
        buyers = asyncio.run(_make_buyers(store, count, funds=10_000_000))
        with running(store.server("mercato")) as (mercato,):
            store.wait_bus_drained()
            asyncio.run(_sign_in(mercato.base_url, buyers))
            store.wait_bus_drained()
            spy = None
            if py_spy:
                spy = subprocess.Popen([PY_SPY, "record", "-p", str(mercato.pid), "-d", str(int(seconds)), "-r", "200",
                                        "-f", "raw", "-o", py_spy, "--threads"], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            before = cpu_seconds(mercato.pid)
            outcome = asyncio.run(_closed_loop(mercato.base_url, _mercato_purchase, _purchases(buyers, listings),
                                               concurrency=concurrency, duration=seconds))
            cpu = cpu_seconds(mercato.pid) - before
            if spy is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    spy.wait(timeout=30)
    print(f"{outcome.rate:.1f} completed/s, {cpu / max(1, outcome.completed) * 1e6:.0f} µs CPU/order, "
          f"{cpu / outcome.seconds:.2f} cores, p50 {outcome.p(0.5):.0f} ms, p99 {outcome.p(0.99):.0f} ms, "
          f"other {outcome.other}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("count", "load"))
    parser.add_argument("--orders", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--py-spy")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    args = parser.parse_args()
    if args.mode == "count":
        _count(args.orders, args.pg_url, args.concurrency)
    else:
        _load(args.seconds, args.concurrency, args.pg_url, args.py_spy)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
