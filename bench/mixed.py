"""L2 (a 60 s mixed load) and L3 (invariants and the outbox drained after it) of QUALITY.md.

    python -m bench.mixed [--form embedded|scaled|both] [--duration 60] [--concurrency 16]
                          [--pg-url postgresql+asyncpg://…] [--seed 7] [--json FILE]

Bars: L2 0 5xx, < 0.1 % failures, p95 < 300 ms over every request of the mix; L3 the bus owes
nothing (outbox relayed, every delivery done, every observer past every event) within 30 s
of the load's end, no new dead letter, and the money invariants hold (INV-1 ledger
transactions and all entries sum to zero, INV-2 no wallet below zero, INV-3 stored balances
equal their entries' sums; also INV-4 completed digital lines entitled, INV-5 no stock below
zero, INV-7 no unpaid order or running task past its deadline).

Two forms, each on a fresh store (``mercato migrate`` + ``mercato demo``):

embedded  one ``mercato serve`` process on SQLite in a temporary data dir, the bus in-process;
scaled    two ``mercato serve --no-migrate`` and two ``mercato worker`` processes (the commands
          of deploy/compose.yaml) on a PostgreSQL database of their own (created and dropped
          here) with Redis Streams as the broker (a queue and key namespace of their own, removed
          at the end). The artifact store and keys are the shared data dir (compose uses S3 and
          keys in the environment). There is no nginx: the client sends its requests to the two
          serve processes in turn.

Arranged before the clock starts: funded buyers (made through the services, with cheap
password hashes) signed in through the API, and eight of them owning an instance whose
simulated agent has sent a heartbeat; then the bench waits until the bus has worked off what
the demo and this set-up wrote (it fails loudly at its timeout).

The mix (``--concurrency`` closed-loop clients, each request picked at random by weight):

detail    GET /listings/{slug} (anonymous)
search    GET /listings with one or more filters (q, kind, category, price, delivery, platform, sort)
download  GET /listings/{slug}/versions/{v}/download of a free version or one the buyer owns
order     POST /orders?wait=10 of a paid digital listing by a funded buyer (a new pair each
          time); an order not ``completed`` in the answer is looked up after the drain and
          counted as a failure unless it completed by then
install   POST /instances/{id}/installations (free or owned listing): an install task
task      GET /tasks/{id} of a recent task, by its owner
library   GET /library

Beside them, one simulated agent per instance speaks the agent protocol as ``mercato agent``
does, without unpacking: long poll ``GET /agent/tasks?wait=2`` (not timed: it waits on
purpose), progress, the artifact download (its SHA-256 checked), the result, and a heartbeat
with its inventory every 15 s. Its requests count in the totals, failures and 5xx; a task
not ``succeeded`` after the run is a failure.

Reported per form: per operation counts, statuses and latency p50/p95/p99; the server
processes' CPU µs per request (``/proc/<pid>/stat``; the workers' separately); the load
average before and after; the bus backlog at the end of the load and the seconds until it was
empty (for the scaled form also the Redis stream's pending and lag at that moment).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import os
import random
import sys
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.servers import DEFAULT_PG_URL, Store, cpu_seconds, demo_store, free_port
from bench.startup import Process

V1 = "/api/v1"
BARS = {"p95_ms": 300.0, "failure_share": 0.001, "drain_s": 30.0}
# A request's weight in the mix; an order or a task look-up with nothing to do becomes a detail.
MIX: tuple[tuple[str, int], ...] = (("detail", 30), ("search", 22), ("download", 14), ("order", 12),
                                    ("install", 9), ("task", 6), ("library", 7))
UNTIMED = frozenset({"agent_poll"})  # long polls wait on purpose: counted, not in the latency figures
ORDER_WAIT = 10  # seconds POST /orders may wait for the saga
AGENT_POLL_WAIT = 2
HEARTBEAT_SECONDS = 15.0
INSTANCES = 8
PASSWORD = "mixed load buyer password"
BUYER_FUNDS = 10_000_000
REQUEST_TIMEOUT = 30.0
SETTLE_TIMEOUT = 600.0  # the bus working off the demo's and the set-up's events before the load
DRAIN_TIMEOUT = 180.0  # how long L3 waits for the bus after the load before giving up (bar: 30 s)
AGENT_GRACE = 60.0  # after the load, how long the agents may take to finish the tasks queued during it
FINAL_STATES = {"completed", "failed", "expired", "canceled", "refunded", "partially_refunded"}
SEARCH_FILTERS = ("kind", "category", "price", "delivery", "platform")
KINDS = ("app", "plugin", "game")
PLATFORMS = ("linux-x64", "linux-arm64")
SORTS = ("popular", "rating", "newest", "price")


def _log(message: str) -> None:
    print(f"[mixed] {message}", file=sys.stderr, flush=True)


# --- pure parts (tests/bench/test_mixed.py) ---------------------------------------------------------

def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of unsorted values; NaN for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100), at least the first
    return float(ordered[int(min(rank, len(ordered))) - 1])


def weighted_picker(mix: Sequence[tuple[str, int]]) -> Callable[[random.Random], str]:
    names = [name for name, _ in mix]
    cumulative = list(itertools.accumulate(weight for _, weight in mix))
    if not names or cumulative[-1] <= 0:
        raise ValueError("the mix needs at least one operation with a positive weight")

    def pick(rng: random.Random) -> str:
        return rng.choices(names, cum_weights=cumulative)[0]

    return pick


def search_params(rng: random.Random, *, words: Sequence[str], categories: Sequence[str]) -> dict[str, Any]:
    """A search with at least one filter besides the optional text and sort."""
    choices: dict[str, Sequence[str]] = {"kind": KINDS, "category": categories, "price": ("free", "paid"),
                                         "delivery": ("digital", "physical"), "platform": PLATFORMS}
    params: dict[str, Any] = {"limit": rng.choice((10, 20, 50))}
    if words and rng.random() < 0.5:
        params["q"] = rng.choice(words)
    for name in SEARCH_FILTERS:
        if choices[name] and rng.random() < 0.3:
            params[name] = rng.choice(choices[name])
    if not any(name in params for name in SEARCH_FILTERS):
        name = rng.choice([n for n in SEARCH_FILTERS if choices[n]])
        params[name] = rng.choice(choices[name])
    if rng.random() < 0.3:
        params["sort"] = rng.choice(SORTS)
    if rng.random() < 0.2:
        params["facets"] = "false"
    return params


class Recorder:
    """Every request's outcome: latency (ms), status (an HTTP code, or the transport error's
    name), whether it counts as a failure; the first few failures described."""

    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = {}
        self.statuses: dict[str, Counter[str]] = {}
        self.failures: Counter[str] = Counter()
        self.examples: list[str] = []

    def record(self, op: str, ms: float, status: int | str, ok: bool, detail: str = "") -> None:
        self.latencies.setdefault(op, []).append(ms)
        self.statuses.setdefault(op, Counter())[str(status)] += 1
        if not ok:
            self.failures[op] += 1
            if len(self.examples) < 25:
                self.examples.append(f"{op} {status} {detail}"[:400])

    def fail_late(self, op: str, count: int, detail: str) -> None:
        """Failures found after the load (orders and tasks that never finished)."""
        if count:
            self.failures[op] += count
            if len(self.examples) < 25:
                self.examples.append(f"{op} (after the load) {detail}"[:400])

    def summary(self) -> dict[str, Any]:
        timed = [ms for op, values in self.latencies.items() if op not in UNTIMED for ms in values]
        requests = sum(len(v) for v in self.latencies.values())
        server_errors = sum(n for counts in self.statuses.values() for s, n in counts.items() if s.startswith("5"))
        failures = sum(self.failures.values())
        ops = {}
        for op in sorted(self.latencies):
            values = self.latencies[op]
            ops[op] = {"count": len(values), "failures": self.failures.get(op, 0),
                       "statuses": dict(sorted(self.statuses[op].items())),
                       "p50_ms": round(percentile(values, 50), 2), "p95_ms": round(percentile(values, 95), 2),
                       "p99_ms": round(percentile(values, 99), 2), "timed": op not in UNTIMED}
        for op, count in self.failures.items():  # a failure found late for an op never timed (none today)
            ops.setdefault(op, {"count": 0, "failures": count, "statuses": {}, "timed": False})
        return {"requests": requests, "timed_requests": len(timed), "server_errors": server_errors,
                "failures": failures, "failure_share": failures / requests if requests else 1.0,
                "p50_ms": round(percentile(timed, 50), 2), "p95_ms": round(percentile(timed, 95), 2),
                "p99_ms": round(percentile(timed, 99), 2), "ops": ops, "failure_examples": self.examples}


def l2_passed(summary: dict[str, Any], bars: dict[str, float] = BARS) -> bool:
    return (summary["requests"] > 0 and summary["server_errors"] == 0
            and summary["failure_share"] < bars["failure_share"] and summary["p95_ms"] < bars["p95_ms"])


def l3_passed(l3: dict[str, Any], bars: dict[str, float] = BARS) -> bool:
    return (l3.get("drained_in_s") is not None and l3["drained_in_s"] <= bars["drain_s"]
            and not l3.get("violations") and l3.get("new_dead_letters", 0) == 0)


# --- the store and its processes ----------------------------------------------------------------------

@dataclass
class ListingRef:
    id: str
    slug: str
    price: int
    versions: list[str]


@dataclass
class Catalog:
    free: list[ListingRef]
    paid: list[ListingRef]
    words: list[str]
    categories: list[str]

    @property
    def all(self) -> list[ListingRef]:
        return self.free + self.paid


@dataclass
class Buyer:
    user_id: str
    email: str
    token: str = ""
    owned: list[ListingRef] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Instance:
    owner: Buyer
    id: str = ""
    token: str = ""
    inventory: dict[str, dict[str, Any]] = field(default_factory=dict)
    queued: set[str] = field(default_factory=set)  # install tasks queued for it (from the answers)
    reported: set[str] = field(default_factory=set)  # tasks its agent reported on

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _database_url(store: Store) -> str:
    return store.database_url or f"sqlite+aiosqlite:///{store.data_dir / 'mercato.db'}"


class Form:
    """The processes of one form: base URLs for the client, pids for the CPU figures."""

    def __init__(self, name: str, store: Store) -> None:
        self.name, self.store = name, store
        self.serves: list[Process] = []
        self.workers: list[Process] = []
        self.base_urls: list[str] = []
        self.env: dict[str, str] = dict(store.env)
        self.redis_queue: str | None = None
        self.redis_namespace: str | None = None

    def start(self) -> None:
        data_dir = str(self.store.data_dir)
        if self.name == "embedded":
            port = free_port()
            self.serves.append(Process(["-m", "mercato", "serve", "--port", str(port), "--data-dir", data_dir],
                                       self.env, self.store.data_dir / f"serve-{port}.log"))
            self.base_urls.append(f"http://127.0.0.1:{port}")
        else:
            tag = uuid.uuid4().hex[:8]
            self.redis_queue, self.redis_namespace = f"bench-mixed-{tag}", f"bench-mixed-{tag}"
            self.env.update({"MERCATO_BROKER_URL": "redis://127.0.0.1:6379/0", "MERCATO_BUS_QUEUE": self.redis_queue,
                             "MERCATO_REDIS_URL": "redis://127.0.0.1:6379/0",
                             "MERCATO_REDIS_NAMESPACE": self.redis_namespace})
            for number in (1, 2):
                self.workers.append(Process(["-m", "mercato", "worker", "--data-dir", data_dir], self.env,
                                            self.store.data_dir / f"worker-{number}.log"))
            for _ in (1, 2):
                port = free_port()
                self.serves.append(Process(["-m", "mercato", "serve", "--port", str(port), "--no-migrate",
                                            "--data-dir", data_dir], self.env,
                                           self.store.data_dir / f"serve-{port}.log"))
                self.base_urls.append(f"http://127.0.0.1:{port}")
        for worker in self.workers:
            worker.wait_output("running (", timeout=300)
        for serve, base in zip(self.serves, self.base_urls, strict=True):
            serve.wait_http(base + "/readyz", timeout=300)

    def stop(self) -> dict[str, Any]:
        stopped = {}
        for process in [*self.serves, *self.workers]:
            if process.popen.poll() is None:
                stopped[process.log.stem] = process.terminate(timeout=30)
                if stopped[process.log.stem]["traceback"]:  # kept: the log goes with the temporary data dir
                    stopped[process.log.stem]["log_tail"] = process.log.read_text(errors="replace")[-6000:]
            process.kill()
        if self.redis_queue:
            stopped["redis_keys_removed"] = _remove_redis_keys(self.redis_queue, self.redis_namespace or "")
        return stopped

    def died(self) -> list[str]:
        return [f"{p.log.stem} exited {p.popen.returncode}:\n{p.log.read_text(errors='replace')[-2000:]}"
                for p in [*self.serves, *self.workers] if p.popen.poll() is not None]

    def cpu(self) -> dict[str, float]:
        return {p.log.stem: cpu_seconds(p.pid) for p in [*self.serves, *self.workers]}


def _remove_redis_keys(queue: str, namespace: str) -> int:
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        keys = {key for pattern in (f"{queue}*", f"{namespace}*") for key in client.scan_iter(match=pattern)}
        return int(client.delete(*keys)) if keys else 0
    finally:
        client.close()


def _redis_stream_backlog(queue: str) -> dict[str, int]:
    """The consumer group's pending (delivered, not acknowledged) and lag (not yet delivered)."""
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:6379/0", decode_responses=True)
    try:
        groups = client.xinfo_groups(queue) if client.exists(queue) else []
        return {"pending": sum(int(g.get("pending") or 0) for g in groups),
                "lag": sum(int(g.get("lag") or 0) for g in groups),
                "stream_length": int(client.xlen(queue)) if client.exists(queue) else 0}
    finally:
        client.close()


@contextmanager
def prepared(form: str, pg_url: str) -> Iterator[Store]:
    with demo_store("sqlite" if form == "embedded" else "postgresql", pg_url) as store:
        yield store


# --- reading the database ------------------------------------------------------------------------------

class Db:
    """The store's database, read by the bench beside the running servers."""

    def __init__(self, store: Store) -> None:
        from mercato.bus.registry import load_handlers
        from mercato.kit.db import Database

        self.db = Database(_database_url(store))
        self.registry = load_handlers()

    async def dispose(self) -> None:
        await self.db.dispose()

    async def catalog(self) -> Catalog:
        from sqlalchemy import select

        from mercato.models import Category, Listing, ListingVersion

        async with self.db.read_session() as session:
            rows = (await session.execute(select(Listing.id, Listing.slug, Listing.digital_price, Listing.tags)
                                          .where(Listing.status == "published", Listing.digital_price.is_not(None))
                                          .order_by(Listing.slug))).all()
            versions: dict[str, list[str]] = {}
            for listing_id, version in (await session.execute(
                    select(ListingVersion.listing_id, ListingVersion.version)
                    .where(ListingVersion.status == "approved"))).all():
                versions.setdefault(str(listing_id), []).append(version)
            categories = sorted((await session.scalars(select(Category.slug))).all())
        free, paid, words = [], [], set()
        for listing_id, slug, price, tags in rows:
            if not versions.get(str(listing_id)):
                continue
            ref = ListingRef(str(listing_id), slug, int(price), sorted(versions[str(listing_id)]))
            (paid if ref.price > 0 else free).append(ref)
            words.update(tags or [])
            words.add(slug.split("-")[0])
        if not free or not paid:
            raise RuntimeError(f"the demo catalog has {len(free)} free and {len(paid)} paid digital listings "
                               "with approved versions: the mix needs both")
        return Catalog(free, paid, sorted(words), categories)

    async def backlog(self) -> dict[str, Any]:
        from mercato.bus.service import backlog

        async with self.db.read_session() as session:
            owed = await backlog(session, self.registry)
        return {"outbox": owed.outbox, "pending": owed.pending_total, "dead": owed.dead_total,
                "pending_by_subscriber": {k: v for k, v in owed.pending.items() if v},
                "dead_by_subscriber": {k: v for k, v in owed.dead.items() if v}}

    async def owes_anything(self) -> bool:
        from mercato.bus.service import owes_anything

        return await owes_anything(self.db, self.registry)

    async def wait_settled(self, timeout: float, what: str) -> float:
        """Seconds until the bus owes nothing; fails loudly at ``timeout``."""
        started = time.monotonic()
        while await self.owes_anything():
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"the bus did not settle {what} within {timeout:.0f} s: {await self.backlog()}")
            await asyncio.sleep(0.5)
        return time.monotonic() - started

    async def order_states(self, ids: Sequence[str]) -> dict[str, str]:
        from sqlalchemy import select

        from mercato.models import Order

        found: dict[str, str] = {}
        async with self.db.read_session() as session:
            for start in range(0, len(ids), 500):
                chunk = [uuid.UUID(i) for i in ids[start:start + 500]]
                for order_id, status in (await session.execute(
                        select(Order.id, Order.status).where(Order.id.in_(chunk)))).all():
                    found[str(order_id)] = status
        return found

    async def task_states(self, ids: Sequence[str]) -> dict[str, str]:
        from sqlalchemy import select

        from mercato.models import InstallTask

        found: dict[str, str] = {}
        async with self.db.read_session() as session:
            for start in range(0, len(ids), 500):
                chunk = [uuid.UUID(i) for i in ids[start:start + 500]]
                for task_id, state in (await session.execute(
                        select(InstallTask.id, InstallTask.state).where(InstallTask.id.in_(chunk)))).all():
                    found[str(task_id)] = state
        return found

    async def invariants(self) -> list[str]:
        """The checks of tests/support/invariants.py (INV-1..5) and INV-7's deadlines, as a list
        of violations (empty: they hold). Ported here: bench/ does not import tests/."""
        from sqlalchemy import func, select

        from mercato.kit.clock import utcnow
        from mercato.models import (
            Entitlement,
            InstallTask,
            LedgerAccount,
            LedgerEntry,
            Listing,
            Order,
            OrderLine,
        )

        violations: list[str] = []
        async with self.db.read_session() as session:
            unbalanced = (await session.execute(
                select(LedgerEntry.transaction_id, func.sum(LedgerEntry.amount))
                .group_by(LedgerEntry.transaction_id).having(func.sum(LedgerEntry.amount) != 0))).all()
            if unbalanced:
                violations.append(f"INV-1: {len(unbalanced)} unbalanced ledger transactions {unbalanced[:5]}")
            overall = await session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0)))
            if overall != 0:
                violations.append(f"INV-1: all ledger entries sum to {overall}")
            negative = (await session.execute(select(LedgerAccount.key, LedgerAccount.balance).where(
                LedgerAccount.balance < 0, LedgerAccount.may_go_negative.is_(False)))).all()
            if negative:
                violations.append(f"INV-2: {len(negative)} accounts below zero {negative[:5]}")
            sums = dict((await session.execute(select(LedgerEntry.account_id, func.sum(LedgerEntry.amount))
                                                .group_by(LedgerEntry.account_id))).all())
            differ = [(key, balance, int(sums.get(account_id, 0))) for account_id, key, balance in (
                await session.execute(select(LedgerAccount.id, LedgerAccount.key, LedgerAccount.balance))).all()
                if balance != int(sums.get(account_id, 0))]
            if differ:
                violations.append(f"INV-3: {len(differ)} stored balances differ from their entries (key, stored, "
                                  f"sum) {differ[:5]}")
            missing = (await session.execute(
                select(Order.id, OrderLine.listing_id)
                .join(OrderLine, OrderLine.order_id == Order.id)
                .outerjoin(Entitlement, (Entitlement.user_id == Order.user_id)
                           & (Entitlement.listing_id == OrderLine.listing_id) & Entitlement.revoked_at.is_(None))
                .where(Order.status.in_(("completed", "partially_refunded")), OrderLine.delivery == "digital",
                       OrderLine.refunded_quantity < OrderLine.quantity, Entitlement.id.is_(None)))).all()
            if missing:
                violations.append(f"INV-4: {len(missing)} paid, unrefunded lines without an entitlement "
                                  f"{missing[:5]}")
            oversold = (await session.execute(select(Listing.slug, Listing.stock).where(Listing.stock < 0))).all()
            if oversold:
                violations.append(f"INV-5: stock below zero {oversold}")
            now = utcnow()
            late = (await session.execute(select(Order.id, Order.status).where(
                Order.status.in_(("created", "awaiting_payment")),
                Order.expires_at < now - timedelta(seconds=30)))).all()
            if late:
                violations.append(f"INV-7: {len(late)} unpaid orders open past their deadline {late[:5]}")
            overdue = (await session.execute(select(InstallTask.id, InstallTask.state).where(
                InstallTask.state.in_(("dispatched", "running")), InstallTask.deadline_at < now))).all()
            if overdue:
                violations.append(f"INV-7: {len(overdue)} tasks running past their deadline {overdue[:5]}")
        return violations


# --- arranging the store ----------------------------------------------------------------------------

async def make_buyers(store: Store, count: int, funds: int) -> list[Buyer]:
    """Accounts with money, through the services (cheap password hashes: the load is not about
    sign-in), as bench/checkout.py makes them."""
    from mercato.accounts import service as accounts
    from mercato.app.runtime import Runtime
    from mercato.config import Settings
    from mercato.wallet import service as wallet

    settings = Settings(data_dir=store.data_dir, database_url=store.database_url, testing=True)
    rt = Runtime.from_settings(settings)
    buyers: list[Buyer] = []
    try:
        for start in range(0, count, 100):
            async with rt.db.transaction() as session:
                for _ in range(start, min(count, start + 100)):
                    email = f"mixed-{uuid.uuid4().hex[:10]}@bench.test"
                    user = await accounts.create_user(session, rt, email=email, password=PASSWORD, roles=["user"])
                    await wallet.credit_payment(session, payment_id=uuid.uuid4(), user_id=user.id, provider="bench",
                                                amount=funds, currency=settings.currency)
                    buyers.append(Buyer(str(user.id), email))
    finally:
        await rt.close()
    return buyers


def _heartbeat_body(instance: Instance) -> dict[str, Any]:
    return {"inventory": list(instance.inventory.values())[:1000],
            "resources": {"memory_mb": 8192, "disk_mb": 100_000, "host": "bench-mixed"},
            "platform": "linux-x64", "host_version": "2.0.0"}


async def sign_in(clients: Sequence[httpx.AsyncClient], buyers: list[Buyer], instances: list[Instance]) -> None:
    semaphore = asyncio.Semaphore(8)

    async def one(n: int, buyer: Buyer) -> None:
        async with semaphore:
            answer = await clients[n % len(clients)].post(f"{V1}/auth/login",
                                                          json={"email": buyer.email, "password": PASSWORD})
            if answer.status_code != 200:
                raise RuntimeError(f"sign-in of {buyer.email} answered {answer.status_code}: {answer.text[:300]}")
            buyer.token = answer.json()["access_token"]

    await asyncio.gather(*(one(n, buyer) for n, buyer in enumerate(buyers)))
    for n, instance in enumerate(instances):
        client = clients[n % len(clients)]
        made = await client.post(f"{V1}/instances", json={"name": f"bench box {n}"}, headers=instance.owner.auth)
        if made.status_code != 201:
            raise RuntimeError(f"POST /instances answered {made.status_code}: {made.text[:300]}")
        instance.id, instance.token = made.json()["id"], made.json()["token"]
        beat = await client.post(f"{V1}/agent/heartbeat", json=_heartbeat_body(instance), headers=instance.auth)
        if beat.status_code != 200:
            raise RuntimeError(f"the first heartbeat answered {beat.status_code}: {beat.text[:300]}")


# --- the load ----------------------------------------------------------------------------------------

@dataclass
class Load:
    catalog: Catalog
    buyers: list[Buyer]
    instances: list[Instance]
    purchases: list[tuple[Buyer, ListingRef]]
    recorder: Recorder = field(default_factory=Recorder)
    orders: dict[str, Buyer] = field(default_factory=dict)  # order id -> buyer, for orders not completed in the answer
    order_listing: dict[str, ListingRef] = field(default_factory=dict)
    tasks: list[tuple[str, Buyer]] = field(default_factory=list)
    installs: Iterator[int] = field(default_factory=itertools.count)
    fell_back: Counter[str] = field(default_factory=Counter)


Operation = Callable[[Load, httpx.AsyncClient, random.Random], Awaitable[tuple[int | str, bool, str]]]


async def op_detail(load: Load, client: httpx.AsyncClient, rng: random.Random) -> tuple[int | str, bool, str]:
    listing = rng.choice(load.catalog.all)
    answer = await client.get(f"{V1}/listings/{listing.slug}")
    return answer.status_code, answer.status_code == 200, answer.text[:200]


async def op_search(load: Load, client: httpx.AsyncClient, rng: random.Random) -> tuple[int | str, bool, str]:
    params = search_params(rng, words=load.catalog.words, categories=load.catalog.categories)
    answer = await client.get(f"{V1}/listings", params=params)
    return answer.status_code, answer.status_code == 200, f"{params} {answer.text[:200]}"


async def op_download(load: Load, client: httpx.AsyncClient, rng: random.Random) -> tuple[int | str, bool, str]:
    buyer = rng.choice(load.buyers)
    owned = buyer.owned
    listing = rng.choice(owned) if owned and rng.random() < 0.5 else rng.choice(load.catalog.free)
    version = rng.choice(listing.versions)
    answer = await client.get(f"{V1}/listings/{listing.slug}/versions/{version}/download", headers=buyer.auth)
    ok = answer.status_code == 200 and hashlib.sha256(answer.content).hexdigest() == answer.headers.get(
        "x-checksum-sha256")
    return answer.status_code, ok, f"{listing.slug} {version} {answer.text[:200] if answer.status_code != 200 else ''}"


async def op_order(load: Load, client: httpx.AsyncClient, rng: random.Random) -> tuple[int | str, bool, str]:
    buyer, listing = load.purchases.pop()
    answer = await client.post(f"{V1}/orders", params={"wait": ORDER_WAIT}, headers={
        **buyer.auth, "Idempotency-Key": uuid.uuid4().hex}, json={
        "items": [{"listing_id": listing.id, "delivery": "digital", "quantity": 1}]})
    if answer.status_code != 201:
        return answer.status_code, False, f"{listing.slug} {answer.text[:200]}"
    order = answer.json()
    if order["status"] == "completed":
        buyer.owned.append(listing)
        return 201, True, ""
    if order["status"] in FINAL_STATES:  # failed, expired, canceled: the purchase did not happen
        return f"201_{order['status']}", False, f"{listing.slug} {order.get('failure_reason')}"
    load.orders[order["id"]] = buyer  # looked up again after the drain
    load.order_listing[order["id"]] = listing
    return f"201_{order['status']}", True, ""


async def op_install(load: Load, client: httpx.AsyncClient, rng: random.Random) -> tuple[int | str, bool, str]:
    instance = rng.choice(load.instances)
    listing = rng.choice(load.catalog.free + instance.owner.owned)
    name = f"{listing.slug[:50]}-{next(load.installs)}"
    answer = await client.post(f"{V1}/instances/{instance.id}/installations", headers=instance.owner.auth, json={
        "listing_id": listing.id, "version": rng.choice(listing.versions), "name": name})
    if answer.status_code not in (200, 202):
        return answer.status_code, False, f"{listing.slug} {answer.text[:200]}"
    task = answer.json()
    instance.queued.add(task["id"])
    load.tasks.append((task["id"], instance.owner))
    return answer.status_code, True, ""


async def op_task(load: Load, client: httpx.AsyncClient, rng: random.Random) -> tuple[int | str, bool, str]:
    task_id, owner = rng.choice(load.tasks[-50:])
    answer = await client.get(f"{V1}/tasks/{task_id}", headers=owner.auth)
    return answer.status_code, answer.status_code == 200, answer.text[:200]


async def op_library(load: Load, client: httpx.AsyncClient, rng: random.Random) -> tuple[int | str, bool, str]:
    buyer = rng.choice(load.buyers)
    answer = await client.get(f"{V1}/library", headers=buyer.auth)
    return answer.status_code, answer.status_code == 200, answer.text[:200]


OPERATIONS: dict[str, Operation] = {"detail": op_detail, "search": op_search, "download": op_download,
                                    "order": op_order, "install": op_install, "task": op_task,
                                    "library": op_library}


async def timed(load: Load, op: str, call: Callable[[], Awaitable[tuple[int | str, bool, str]]]) -> None:
    started = time.perf_counter()
    try:
        status, ok, detail = await call()
    except Exception as error:  # a transport error, a timeout, or an answer not as documented
        status, ok, detail = type(error).__name__, False, str(error)[:200]
    ms = (time.perf_counter() - started) * 1000
    if isinstance(status, int) and status >= 500:
        ok = False
    load.recorder.record(op, ms, status, ok, detail)


async def client_loop(load: Load, clients: Sequence[httpx.AsyncClient], turn: Iterator[int], rng: random.Random,
                      deadline: float) -> None:
    pick = weighted_picker(MIX)
    while time.perf_counter() < deadline:
        op = pick(rng)
        if (op == "order" and not load.purchases) or (op == "task" and not load.tasks):
            load.fell_back[op] += 1
            op = "detail"
        client = clients[next(turn) % len(clients)]
        operation = OPERATIONS[op]
        await timed(load, op, lambda operation=operation, client=client: operation(load, client, rng))


async def agent_loop(load: Load, instance: Instance, client: httpx.AsyncClient, done: asyncio.Event) -> None:
    """One instance's agent: fetch tasks, report progress, download and check the artifact,
    report the result; a heartbeat with the inventory every 15 s. Ends once the load is over and
    every task queued for the instance has been reported on."""
    last_beat = time.monotonic()
    while not (done.is_set() and instance.queued <= instance.reported):
        if time.monotonic() - last_beat > HEARTBEAT_SECONDS:
            last_beat = time.monotonic()

            async def beat() -> tuple[int | str, bool, str]:
                answer = await client.post(f"{V1}/agent/heartbeat", json=_heartbeat_body(instance),
                                           headers=instance.auth)
                return answer.status_code, answer.status_code == 200, answer.text[:200]

            await timed(load, "agent_heartbeat", beat)
        for task in await _poll(load, instance, client):
            await _carry_out(load, instance, client, task)


async def _poll(load: Load, instance: Instance, client: httpx.AsyncClient) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = []

    async def poll() -> tuple[int | str, bool, str]:
        answer = await client.get(f"{V1}/agent/tasks", params={"wait": AGENT_POLL_WAIT}, headers=instance.auth)
        if answer.status_code == 200:
            tasks.extend(answer.json()["items"])
        return answer.status_code, answer.status_code == 200, answer.text[:200]

    await timed(load, "agent_poll", poll)
    return tasks


async def _carry_out(load: Load, instance: Instance, client: httpx.AsyncClient, task: dict[str, Any]) -> None:
    base = f"{V1}/agent/tasks/{task['id']}"
    outcome = {"value": "succeeded", "message": None}

    async def progress() -> tuple[int | str, bool, str]:
        answer = await client.post(f"{base}/progress", json={"percent": 10, "message": "downloading"},
                                   headers=instance.auth)
        return answer.status_code, answer.status_code == 200, answer.text[:200]

    async def artifact() -> tuple[int | str, bool, str]:
        answer = await client.get(f"{base}/artifact", headers=instance.auth)
        expected = (task.get("artifact") or {}).get("sha256")
        ok = answer.status_code == 200 and hashlib.sha256(answer.content).hexdigest() == expected
        if not ok:
            outcome.update(value="failed", message=f"download_failed: {answer.status_code}")
        return answer.status_code, ok, answer.text[:200] if answer.status_code != 200 else "checksum mismatch"

    async def result() -> tuple[int | str, bool, str]:
        answer = await client.post(f"{base}/result", json={"outcome": outcome["value"],
                                                           "message": outcome["message"]}, headers=instance.auth)
        return answer.status_code, answer.status_code == 200, answer.text[:200]

    await timed(load, "agent_progress", progress)
    if task.get("artifact"):
        await timed(load, "agent_artifact", artifact)
    await timed(load, "agent_result", result)
    instance.reported.add(task["id"])
    installation = task["installation"]
    if outcome["value"] == "succeeded" and task["kind"] == "install":
        instance.inventory[installation["id"]] = {"installation_id": installation["id"],
                                                  "listing_id": installation["listing_id"],
                                                  "version": task["version"], "state": "installed"}


def _clients(base_urls: Sequence[str], connections: int) -> list[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return [httpx.AsyncClient(base_url=base, timeout=REQUEST_TIMEOUT, limits=limits) for base in base_urls]


async def run_load(load: Load, base_urls: Sequence[str], *, duration: float, concurrency: int,
                   seed: int) -> dict[str, Any]:
    clients = _clients(base_urls, concurrency)
    agent_clients = _clients(base_urls, len(load.instances))
    done = asyncio.Event()
    turn = itertools.count()
    agents: list[asyncio.Task[None]] = []
    try:
        agents = [asyncio.create_task(agent_loop(load, instance, agent_clients[n % len(agent_clients)], done))
                  for n, instance in enumerate(load.instances)]
        started = time.perf_counter()
        deadline = started + duration
        await asyncio.gather(*(client_loop(load, clients, turn, random.Random(seed * 1000 + n), deadline)
                               for n in range(concurrency)))
        elapsed = time.perf_counter() - started
        done.set()
        finished, unfinished = await asyncio.wait(agents, timeout=AGENT_GRACE)
        for agent in unfinished:
            agent.cancel()
        for agent in finished:
            agent.result()  # an agent that crashed is the bench's bug: raise it
        agents_s = time.perf_counter() - started - elapsed
    finally:
        for agent in agents:
            agent.cancel()
        await asyncio.gather(*agents, return_exceptions=True)
        for client in clients + agent_clients:
            await client.aclose()
    left = sum(len(i.queued - i.reported) for i in load.instances)
    if unfinished:
        _log(f"the agents had not reported on {left} tasks {AGENT_GRACE:.0f} s after the load (failures below)")
    return {"seconds": round(elapsed, 2), "agents_after_load_s": round(agents_s, 2),
            "tasks_not_reported": left}


# --- one form ----------------------------------------------------------------------------------------

def run_form(form: str, *, duration: float, concurrency: int, pg_url: str, seed: int) -> dict[str, Any]:
    results: dict[str, Any] = {"form": form, "duration_s": duration, "concurrency": concurrency, "seed": seed,
                               "bars": BARS, "mix": dict(MIX)}
    _log(f"{form}: preparing a store (migrate + demo)")
    with prepared(form, pg_url) as store:
        processes = Form(form, store)
        try:
            # One event loop for the whole measurement: the bench's database engine lives in it.
            asyncio.run(_measure(store, processes, results, duration=duration, concurrency=concurrency, seed=seed))
            results["died"] = processes.died()
        finally:
            results["stopped"] = processes.stop()
            results["warnings"] = store.warnings
    results["l2"]["pass"] = l2_passed(results["l2"]) and not results["died"]
    results["l3"]["pass"] = l3_passed(results["l3"]) and not results["died"]
    return results


async def _measure(store: Store, processes: Form, results: dict[str, Any], *, duration: float, concurrency: int,
                   seed: int) -> None:
    form = processes.name
    db = Db(store)
    try:
        catalog = await db.catalog()
        buyer_count = max(INSTANCES, int(duration * 40 / len(catalog.paid)) + 20)  # (buyer, listing) pairs to spare
        buyers = await make_buyers(store, buyer_count, BUYER_FUNDS)
        _log(f"{form}: {len(catalog.free)} free and {len(catalog.paid)} paid listings, {len(buyers)} funded "
             f"buyers; starting {'one serve' if form == 'embedded' else 'two serves and two workers'}")
        processes.start()  # blocking: nothing else runs in this loop yet
        results["settle_before_s"] = round(await db.wait_settled(SETTLE_TIMEOUT, "after the demo and the set-up"), 1)
        instances = [Instance(owner) for owner in buyers[:INSTANCES]]
        clients = _clients(processes.base_urls, 8)
        try:
            await sign_in(clients, buyers, instances)
        finally:
            for client in clients:
                await client.aclose()
        results["settle_after_sign_in_s"] = round(await db.wait_settled(SETTLE_TIMEOUT, "after sign-in"), 1)
        _log(f"{form}: the bus settled ({results['settle_before_s']} s); {duration:.0f} s of load at "
             f"concurrency {concurrency}")
        rng = random.Random(seed)
        purchases = [(buyer, listing) for buyer in buyers for listing in catalog.paid]
        rng.shuffle(purchases)
        load = Load(catalog, buyers, instances, purchases)
        results["loadavg_before"] = os.getloadavg()
        cpu_before = processes.cpu()
        results["load"] = await run_load(load, processes.base_urls, duration=duration, concurrency=concurrency,
                                         seed=seed)
        cpu_after = processes.cpu()
        results["loadavg_after"] = os.getloadavg()
        _log(f"{form}: load done ({load.recorder.summary()['requests']} requests); waiting for the bus")
        results["l3"] = await _after_load(db, processes, load)
        results["loadavg_end"] = os.getloadavg()
    finally:
        await db.dispose()
    summary = load.recorder.summary()
    requests = max(1, summary["requests"])
    cpu = {name: cpu_after[name] - cpu_before[name] for name in cpu_before}
    serve_cpu = sum(v for k, v in cpu.items() if k.startswith("serve"))
    worker_cpu = sum(v for k, v in cpu.items() if k.startswith("worker"))
    summary["cpu_s"] = {k: round(v, 2) for k, v in cpu.items()}
    summary["serve_cpu_us_per_request"] = round(serve_cpu / requests * 1e6, 1)
    summary["worker_cpu_us_per_request"] = round(worker_cpu / requests * 1e6, 1) if processes.workers else None
    summary["rps"] = round(summary["requests"] / results["load"]["seconds"], 1)
    summary["fell_back_to_detail"] = dict(load.fell_back)
    results["l2"] = summary


async def _after_load(db: Db, processes: Form, load: Load) -> dict[str, Any]:
    """L3: how long the bus takes to owe nothing after the load; then the orders and tasks of the
    load that had not finished, the dead letters and the invariants."""
    l3: dict[str, Any] = {"backlog_at_end": await db.backlog()}
    if processes.redis_queue:
        l3["broker_at_end"] = _redis_stream_backlog(processes.redis_queue)
    started = time.monotonic()
    drained = None
    while True:
        if not await db.owes_anything():
            drained = time.monotonic() - started
            break
        if time.monotonic() - started > DRAIN_TIMEOUT:
            break
        await asyncio.sleep(0.25)
    l3["drained_in_s"] = round(drained, 2) if drained is not None else None
    if drained is None:  # loudly: the figure is not a number, and the backlog left is printed
        l3["backlog_left"] = await db.backlog()
        _log(f"L3: the bus still owed work {DRAIN_TIMEOUT:.0f} s after the load: {l3['backlog_left']}")
    if processes.redis_queue:
        l3["broker_at_drain"] = _redis_stream_backlog(processes.redis_queue)
    after = await db.backlog()
    before_dead = l3["backlog_at_end"]["dead"]
    l3["dead_letters"] = after["dead"]
    l3["new_dead_letters"] = max(0, after["dead"] - before_dead)
    l3["dead_by_subscriber"] = after["dead_by_subscriber"]

    states = await db.order_states(list(load.orders))
    late = Counter(states.get(order_id, "missing") for order_id in load.orders)
    unfinished = {order_id: state for order_id, state in states.items() if state != "completed"}
    load.recorder.fail_late("order", len(unfinished) + sum(1 for o in load.orders if o not in states),
                            f"{len(unfinished)} orders not completed after the drain: {dict(late)}")
    for order_id, buyer in load.orders.items():
        if states.get(order_id) == "completed":
            buyer.owned.append(load.order_listing[order_id])
    l3["orders_not_completed_in_answer"] = dict(late)  # their states after the drain
    task_states = await db.task_states([task_id for task_id, _ in load.tasks])
    tasks = Counter(task_states.get(task_id, "missing") for task_id, _ in load.tasks)
    l3["tasks"] = dict(tasks)
    not_done = sum(n for state, n in tasks.items() if state != "succeeded")
    load.recorder.fail_late("install", not_done, f"{not_done} install tasks not succeeded: {dict(tasks)}")
    l3["violations"] = await db.invariants()
    return l3


# --- report -------------------------------------------------------------------------------------------

def report_lines(results: dict[str, Any]) -> dict[str, list[str]]:
    lines: dict[str, list[str]] = {"L2": [], "L3": []}
    for form in ("embedded", "scaled"):
        if form not in results:
            continue
        one = results[form]
        if "error" in one:
            lines["L2"].append(f"L2 form={form} ERROR ({one['error']}) FAIL")
            lines["L3"].append(f"L3 form={form} ERROR ({one['error']}) FAIL")
            continue
        l2, l3 = one["l2"], one["l3"]
        lines["L2"].append(
            f"L2 form={form} p95={l2['p95_ms']:.0f}ms 5xx={l2['server_errors']} "
            f"failures={l2['failure_share'] * 100:.3f}% bar={BARS['p95_ms']:.0f}ms {'PASS' if l2['pass'] else 'FAIL'}")
        ops = ", ".join(f"{op} {v['count']} (p95 {v.get('p95_ms', float('nan')):.0f} ms"
                        + (f", {v['failures']} failed" if v["failures"] else "") + ")"
                        for op, v in l2["ops"].items())
        lines["L2"].append(
            f"  {l2['requests']} requests in {one['load']['seconds']:.0f} s ({l2['rps']:.0f}/s) at concurrency "
            f"{one['concurrency']}, p50 {l2['p50_ms']:.0f} ms, p99 {l2['p99_ms']:.0f} ms; serve CPU "
            f"{l2['serve_cpu_us_per_request']:.0f} µs/request"
            + (f", workers {l2['worker_cpu_us_per_request']:.0f} µs/request" if l2["worker_cpu_us_per_request"]
               is not None else "")
            + f"; load average {one['loadavg_before'][0]:.1f} before, {one['loadavg_after'][0]:.1f} after")
        lines["L2"].append(f"  {ops}")
        if l2["failure_examples"]:
            lines["L2"].append(f"  first failures: {'; '.join(l2['failure_examples'][:5])}")
        if one.get("died"):
            lines["L2"].append(f"  processes died: {[d.splitlines()[0] for d in one['died']]}")
        drained = l3["drained_in_s"]
        lines["L3"].append(
            f"L3 form={form} drained_in={'timeout' if drained is None else f'{drained:.1f}s'} "
            f"invariants={'ok' if not l3['violations'] else 'VIOLATED'} dead_letters+={l3['new_dead_letters']} "
            f"bar={BARS['drain_s']:.0f}s {'PASS' if l3['pass'] else 'FAIL'}")
        end = l3["backlog_at_end"]
        lines["L3"].append(
            f"  at the end of the load: outbox {end['outbox']}, deliveries owed {end['pending']}"
            + (f", Redis stream pending {l3['broker_at_end']['pending']} lag {l3['broker_at_end']['lag']}"
               if "broker_at_end" in l3 else "")
            + f"; orders not completed in their answer (state after the drain): "
              f"{l3['orders_not_completed_in_answer'] or 'none'}; "
              f"install tasks {l3['tasks']}")
        for violation in l3["violations"]:
            lines["L3"].append(f"  {violation}")
        if l3["new_dead_letters"]:
            lines["L3"].append(f"  new dead letters: {l3['new_dead_letters']} (all, per subscriber: "
                               f"{l3.get('dead_by_subscriber')})")
        if drained is None:
            lines["L3"].append(f"  still owed after {DRAIN_TIMEOUT:.0f} s: {l3.get('backlog_left')}")
    return lines


def run(*, forms: Sequence[str] = ("embedded", "scaled"), duration: float = 60.0, concurrency: int = 16,
        pg_url: str = DEFAULT_PG_URL, seed: int = 7) -> dict[str, Any]:
    results: dict[str, Any] = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpus": os.cpu_count()}
    for form in forms:
        try:
            results[form] = run_form(form, duration=duration, concurrency=concurrency, pg_url=pg_url, seed=seed)
        except Exception as error:  # the other form still runs; the error is reported, never passed over
            traceback.print_exc()
            results[form] = {"form": form, "error": f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
                             if str(error) else type(error).__name__, "traceback": traceback.format_exc()}
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--form", choices=("embedded", "scaled", "both"), default="both")
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="an admin URL of the PostgreSQL server")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = parser.parse_args()
    forms = ("embedded", "scaled") if args.form == "both" else (args.form,)
    results = run(forms=forms, duration=args.duration, concurrency=args.concurrency, pg_url=args.pg_url,
                  seed=args.seed)
    lines = report_lines(results)
    for line in lines["L2"] + lines["L3"]:
        print(line, flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))
    heads = [line for group in lines.values() for line in group if not line.startswith(" ")]
    return 0 if heads and all(line.endswith("PASS") for line in heads) else 1


if __name__ == "__main__":
    sys.exit(main())
