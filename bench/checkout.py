"""PERF-4 (checkout → completed, the whole saga, digital) and PERF-5 (flash sale).

    python -m bench.checkout [--quick] [--pg-url postgresql+asyncpg://…] [--json out.json]

One run on a fresh PostgreSQL database (``mercato migrate`` + ``mercato demo``): buyers are
created and their wallets funded through the services; once the store's bus has drained
the demo's backlog (the wait fails loudly at its timeout) they sign in through the API.

PERF-4. Two uvicorn processes with the same settings, measured in turn:

    checkout   bench.baselines:checkout — the whole purchase in ONE asyncpg transaction
               (guarded wallet debit, order row, entitlement): the yardstick
    mercato    POST /api/v1/orders?wait=30 for a paid digital listing: the order is created,
               then the saga (wallet debit, library grant, completion, settlement) runs over
               the embedded bus; the answer comes when the order is completed

Throughput: completed orders per second with 16 concurrent buyers (closed loop), in three
interleaved rounds (baseline, saga, baseline, saga, …); ratio = the median of the per-round
ratios mercato / checkout, bar ≥ 0.25; the server's CPU µs per completed order beside it.
Latency: the saga's p99 at half of Mercato's
measured rate (open loop: requests started on a fixed schedule), bar < 250 ms.

PERF-5. 100 physical copies, 2,000 concurrent buyers with money, each ordering one: exactly
100 orders reserve stock (paid), the rest are refused with 409 ``out_of_stock``, no 5xx,
everything answered within 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from bench.baselines import create_checkout_tables
from bench.servers import (
    DEFAULT_PG_URL,
    Server,
    Store,
    asyncpg_dsn,
    cpu_seconds,
    demo_store,
    round_ratios,
    running,
)

BARS = {"ratio": 0.25, "p99_ms": 250.0, "flash_seconds": 10.0}
PASSWORD = "bench buyer password 1"
ADDRESS = {"name": "Bench Buyer", "line1": "1 Load Street", "city": "Testville", "postal_code": "12345",
           "country": "DE"}


def _log(message: str) -> None:
    print(f"[checkout] {message}", file=sys.stderr, flush=True)


@dataclass
class Buyer:
    user_id: str
    email: str
    token: str = ""


# --- arranging the store ---------------------------------------------------------------------------

async def _make_buyers(store: Store, count: int, funds: int) -> list[Buyer]:
    """Accounts (cheap password hashes: the benchmark measures checkout, not sign-in) with money."""
    from mercato.accounts import service as accounts
    from mercato.app.runtime import Runtime
    from mercato.config import Settings
    from mercato.wallet import service as wallet

    settings = Settings(data_dir=store.data_dir, database_url=store.database_url, testing=True)
    rt = Runtime.from_settings(settings)
    buyers: list[Buyer] = []
    try:
        for start in range(0, count, 200):
            async with rt.db.transaction() as session:
                for _ in range(start, min(count, start + 200)):
                    email = f"buyer-{uuid.uuid4().hex[:10]}@bench.test"
                    user = await accounts.create_user(session, rt, email=email, password=PASSWORD, roles=["user"])
                    await wallet.credit_payment(session, payment_id=uuid.uuid4(), user_id=user.id, provider="bench",
                                                amount=funds, currency=settings.currency)
                    buyers.append(Buyer(str(user.id), email))
    finally:
        await rt.close()
    return buyers


async def _paid_digital_listings(store: Store) -> list[tuple[str, int]]:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(store.database_url)  # type: ignore[arg-type]
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(text(
                "SELECT id, digital_price FROM listings WHERE status = 'published' AND digital_price > 0 "
                "ORDER BY slug"))
            return [(str(row[0]), int(row[1])) for row in rows]
    finally:
        await engine.dispose()


async def _flash_listing(store: Store, stock: int) -> tuple[str, int]:
    """A published listing with a physical offer, its stock set to ``stock``."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(store.database_url)  # type: ignore[arg-type]
    try:
        async with engine.begin() as connection:
            row = (await connection.execute(text(
                "SELECT id, physical_price FROM listings WHERE status = 'published' AND physical_price IS NOT NULL "
                "ORDER BY slug LIMIT 1"))).one()
            await connection.execute(text("UPDATE listings SET stock = :stock WHERE id = :id"),
                                     {"stock": stock, "id": row[0]})
            return str(row[0]), int(row[1])
    finally:
        await engine.dispose()


async def _sign_in(base: str, buyers: list[Buyer]) -> None:
    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        semaphore = asyncio.Semaphore(16)

        async def one(buyer: Buyer) -> None:
            async with semaphore:
                response = await client.post("/api/v1/auth/login", json={"email": buyer.email, "password": PASSWORD})
                response.raise_for_status()
                buyer.token = response.json()["access_token"]

        await asyncio.gather(*(one(buyer) for buyer in buyers))


# --- load ----------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    completed: int
    other: dict[str, int]
    latencies_ms: list[float]
    seconds: float

    @property
    def rate(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    def p(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _purchases(buyers: list[Buyer], listings: list[tuple[str, int]]) -> list[tuple[Buyer, str, int]]:
    """Every (buyer, listing) pair once, interleaved so consecutive purchases touch other rows."""
    return [(buyer, listing, price) for listing, price in listings for buyer in buyers]


async def _mercato_purchase(client: httpx.AsyncClient, buyer: Buyer, listing: str, _price: int) -> str:
    response = await client.post("/api/v1/orders", params={"wait": 30}, json={
        "items": [{"listing_id": listing, "delivery": "digital", "quantity": 1}]},
        headers={"Authorization": f"Bearer {buyer.token}", "Idempotency-Key": uuid.uuid4().hex})
    if response.status_code >= 500:
        return f"http_{response.status_code}"
    if response.status_code != 201:
        return f"refused_{response.json().get('code')}"
    return str(response.json()["status"])


async def _baseline_purchase(client: httpx.AsyncClient, buyer: Buyer, listing: str, price: int) -> str:
    response = await client.post("/checkout", json={"user": buyer.user_id, "listing": listing, "amount": price})
    return str(response.json()["status"]) if response.status_code == 200 else f"http_{response.status_code}"


async def _closed_loop(base: str, purchase, work: list[tuple[Buyer, str, int]], *,  # type: ignore[no-untyped-def]
                       concurrency: int, duration: float) -> Outcome:
    queue = list(reversed(work))
    counts: dict[str, int] = {}
    latencies: list[float] = []
    deadline = time.perf_counter() + duration
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:
        async def worker() -> None:
            while queue and time.perf_counter() < deadline:
                buyer, listing, price = queue.pop()
                started = time.perf_counter()
                status = await purchase(client, buyer, listing, price)
                latencies.append((time.perf_counter() - started) * 1000)
                counts[status] = counts.get(status, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    completed = counts.pop("completed", 0)
    return Outcome(completed, counts, latencies, elapsed)


async def _open_loop(base: str, purchase, work: list[tuple[Buyer, str, int]], *,  # type: ignore[no-untyped-def]
                     rate: float, duration: float) -> Outcome:
    """Start one purchase every 1/rate s, whatever the earlier ones are doing."""
    counts: dict[str, int] = {}
    latencies: list[float] = []
    total = min(len(work), max(1, int(rate * duration)))
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=httpx.Limits(max_connections=256)) as client:
        async def one(buyer: Buyer, listing: str, price: int) -> None:
            started = time.perf_counter()
            status = await purchase(client, buyer, listing, price)
            latencies.append((time.perf_counter() - started) * 1000)
            counts[status] = counts.get(status, 0) + 1

        tasks = []
        started = time.perf_counter()
        for n, (buyer, listing, price) in enumerate(work[:total]):
            await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(buyer, listing, price)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    completed = counts.pop("completed", 0)
    return Outcome(completed, counts, latencies, elapsed)


async def _flash_sale(base: str, buyers: list[Buyer], listing: str) -> dict[str, Any]:
    counts: dict[str, int] = {}
    limits = httpx.Limits(max_connections=len(buyers), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        async def one(buyer: Buyer) -> None:
            response = await client.post("/api/v1/orders", json={
                "items": [{"listing_id": listing, "delivery": "physical", "quantity": 1}],
                "shipping_address": ADDRESS},
                headers={"Authorization": f"Bearer {buyer.token}", "Idempotency-Key": uuid.uuid4().hex})
            key = str(response.status_code) if response.status_code != 409 else f"409_{response.json().get('code')}"
            counts[key] = counts.get(key, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(one(buyer) for buyer in buyers), return_exceptions=False)
        elapsed = time.perf_counter() - started
    return {"answers": counts, "seconds": elapsed}


async def _reserved(store: Store, listing: str) -> dict[str, int]:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(store.database_url)  # type: ignore[arg-type]
    try:
        async with engine.connect() as connection:
            stock = (await connection.execute(text("SELECT stock FROM listings WHERE id = :id"),
                                              {"id": listing})).scalar()
            ordered = (await connection.execute(text(
                "SELECT coalesce(sum(l.quantity), 0) FROM order_lines l JOIN orders o ON o.id = l.order_id "
                "WHERE l.listing_id = :id AND o.status NOT IN ('expired', 'canceled', 'failed')"),
                {"id": listing})).scalar()
            return {"stock_left": int(stock), "units_ordered": int(ordered)}
    finally:
        await engine.dispose()


# --- the run ---------------------------------------------------------------------------------------

ROUNDS = 3


def _timed(server: Server, job: Any) -> tuple[Outcome, float]:
    """Run ``job`` (a coroutine) and return its outcome with the server's CPU µs per
    completed order over it (for Mercato's embedded store that includes the saga's deliveries)."""
    before = cpu_seconds(server.pid)
    outcome: Outcome = asyncio.run(job)
    cpu = cpu_seconds(server.pid) - before
    return outcome, round(cpu / max(1, outcome.completed) * 1e6, 1)


def run(*, quick: bool = False, pg_url: str = DEFAULT_PG_URL, rounds: int = ROUNDS) -> dict[str, Any]:
    duration = 4.0 if quick else 10.0
    results: dict[str, Any] = {"bars": BARS, "duration_s": duration, "rounds": rounds}
    with demo_store("postgresql", pg_url) as store:
        listings = asyncio.run(_paid_digital_listings(store))
        per_group = max(1, int(duration * 400 / len(listings)))  # enough pairs for a fast baseline
        groups = 2 * rounds + 1  # a baseline and a saga group per round, one for the paced run
        _log(f"{len(listings)} paid digital listings; creating {per_group * groups} buyers and the flash-sale crowd")
        buyers = asyncio.run(_make_buyers(store, per_group * groups, funds=10_000_000))
        crowd = asyncio.run(_make_buyers(store, 2000, funds=1_000_000))
        flash_listing, _ = asyncio.run(_flash_listing(store, 100))
        dsn = asyncpg_dsn(store.database_url)  # type: ignore[arg-type]
        asyncio.run(create_checkout_tables(dsn, [b.user_id for b in buyers], 10_000_000))
        baseline = Server("checkout", "bench.baselines:checkout", env={"BENCH_PG_DSN": dsn}, ready_path="/docs",
                          log_dir=store.data_dir)
        with running(store.server("mercato"), baseline) as (mercato, checkout):
            # The fresh store's bus first delivers what the demo loader and the buyers' sign-ups
            # wrote; measuring before it settles would time that backlog, not checkout. Buyers
            # sign in only after it (access tokens live 10 minutes; the wait may be longer).
            _log(f"the embedded bus drained its backlog after {store.wait_bus_drained():.0f} s")
            asyncio.run(_sign_in(mercato.base_url, buyers))
            group = [buyers[n * per_group:(n + 1) * per_group] for n in range(groups)]
            base_runs: list[dict[str, Any]] = []
            saga_runs: list[dict[str, Any]] = []
            saga_latencies: list[float] = []
            for number in range(rounds):  # interleaved: baseline, saga, baseline, saga, …
                base, base_cpu = _timed(checkout, _closed_loop(
                    checkout.base_url, _baseline_purchase, _purchases(group[2 * number], listings),
                    concurrency=16, duration=duration))
                saga, saga_cpu = _timed(mercato, _closed_loop(
                    mercato.base_url, _mercato_purchase, _purchases(group[2 * number + 1], listings),
                    concurrency=16, duration=duration))
                base_runs.append({"rate": base.rate, "cpu_us_per_order": base_cpu, "other": base.other})
                saga_runs.append({"rate": saga.rate, "cpu_us_per_order": saga_cpu, "other": saga.other,
                                  "p50_ms": saga.p(0.5), "p99_ms": saga.p(0.99)})
                saga_latencies += saga.latencies_ms
                _log(f"PERF-4 round {number + 1}/{rounds}: baseline {base.rate:.1f}/s ({base_cpu:.0f} µs CPU/order), "
                     f"saga {saga.rate:.1f} completed/s ({saga_cpu:.0f} µs CPU/order)"
                     + (f", not completed {saga.other}" if saga.other else ""))
            saga_rate = statistics.median(r["rate"] for r in saga_runs)
            _log(f"PERF-4: the saga's latency at {saga_rate / 2:.1f} orders/s")
            paced, paced_cpu = _timed(mercato, _open_loop(
                mercato.base_url, _mercato_purchase, _purchases(group[-1], listings),
                rate=max(0.5, saga_rate / 2), duration=duration))
            store.wait_bus_drained(timeout=120)
            _log("PERF-5: 2,000 buyers, 100 copies")
            asyncio.run(_sign_in(mercato.base_url, crowd))
            cpu_before = cpu_seconds(mercato.pid)
            flash = asyncio.run(_flash_sale(mercato.base_url, crowd, flash_listing))
            flash["cpu_us_per_request"] = round((cpu_seconds(mercato.pid) - cpu_before) / len(crowd) * 1e6, 1)
            flash.update(asyncio.run(_reserved(store, flash_listing)))
    ratios = round_ratios(saga_runs, base_runs, "rate")
    results["baseline"] = {"rate": statistics.median(r["rate"] for r in base_runs),
                           "cpu_us_per_order": statistics.median(r["cpu_us_per_order"] for r in base_runs),
                           "other": {k: v for r in base_runs for k, v in r["other"].items()}, "runs": base_runs}
    ordered = sorted(saga_latencies) or [float("nan")]
    results["saga"] = {"rate": saga_rate,
                       "cpu_us_per_order": statistics.median(r["cpu_us_per_order"] for r in saga_runs),
                       "other": {k: v for r in saga_runs for k, v in r["other"].items()},
                       "p50_ms": ordered[len(ordered) // 2],
                       "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
                       "runs": saga_runs}
    results["paced"] = {"rate": paced.completed / paced.seconds if paced.seconds else 0, "target_rate": saga_rate / 2,
                        "other": paced.other, "p50_ms": paced.p(0.5), "p99_ms": paced.p(0.99),
                        "cpu_us_per_order": paced_cpu}
    results["ratio_per_round"] = ratios
    results["ratio"] = statistics.median(ratios)
    results["flash"] = flash
    return results


def report_lines(results: dict[str, Any]) -> dict[str, list[str]]:
    ratio, p99 = results["ratio"], results["paced"]["p99_ms"]
    passed = ratio >= BARS["ratio"] and p99 < BARS["p99_ms"] and not results["paced"]["other"]
    flash = results["flash"]
    answers = flash["answers"]
    sold = answers.get("201", 0)
    errors = sum(n for code, n in answers.items() if code.startswith("5"))
    flash_ok = (sold == 100 and flash["units_ordered"] == 100 and flash["stock_left"] == 0 and errors == 0
                and flash["seconds"] < BARS["flash_seconds"])
    return {
        "PERF-4": [f"PERF-4 ratio={ratio:.2f} bar={BARS['ratio']} p99={p99:.0f}ms bar={BARS['p99_ms']:.0f}ms "
                   f"{'PASS' if passed else 'FAIL'}",
                   f"  baseline {results['baseline']['rate']:.1f} orders/s "
                   f"({results['baseline']['cpu_us_per_order']:.0f} µs CPU/order), saga {results['saga']['rate']:.1f} "
                   f"completed/s ({results['saga']['cpu_us_per_order']:.0f} µs CPU/order, p50 "
                   f"{results['saga']['p50_ms']:.0f} ms); per-round ratios {results['ratio_per_round']}; paced at "
                   f"{results['paced']['target_rate']:.1f}/s: p50 {results['paced']['p50_ms']:.0f} ms; "
                   f"not completed: {results['saga']['other'] or results['paced']['other'] or 'none'}"],
        "PERF-5": [f"PERF-5 sold={sold} oversold={max(0, flash['units_ordered'] - 100)} 5xx={errors} "
                   f"done={flash['seconds']:.1f}s bar=100/0/0/<{BARS['flash_seconds']:.0f}s "
                   f"{'PASS' if flash_ok else 'FAIL'}",
                   f"  answers {answers}, stock left {flash['stock_left']}, "
                   f"{flash['cpu_us_per_request']:.0f} µs CPU/request"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument("--json")
    args = parser.parse_args()
    results = run(quick=args.quick, pg_url=args.pg_url)
    for lines in report_lines(results).values():
        print("\n".join(lines))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2, default=str)


if __name__ == "__main__":
    main()
