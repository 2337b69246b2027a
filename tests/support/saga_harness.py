"""A store process for the saga's crash tests (QUALITY F1):
``python -m tests.support.saga_harness DATABASE_URL --seed N [--data-dir DIR]``.

It sets up, idempotently, a deterministic scenario on a migrated database (buyers with
funded wallets, a publisher with a digital listing, a licence-keyed listing whose pool
has two keys, a physical listing with stock and a coupon), then places its orders one
after another through the API in this process (``httpx.ASGITransport``, fixed
``Idempotency-Key`` per order), taking each to a terminal state: paid from the wallet,
a licence key per buyer until the pool runs dry (the third buyer's order fails and is
refunded), shipped and delivered (physical), a shortfall paid through the sandbox
provider, a coupon. The store's own bus runs embedded; the harness exits 0 when every
order is terminal and the bus has nothing left to do.

Failpoints come from ``MERCATO_FAILPOINTS``; a crash exits 137 (``kit/failpoints.py``).
``--serve`` forks each run from one process that imported the store once (the tests).
Running it again without failpoints resumes: the set-up finds what exists, each order's
checkout replays by its key, and each step looks at the order's state before acting, so
nothing is done twice by the harness itself — what a crash left half done is the
store's to finish.

:func:`snapshot` is the end state with every random id replaced by a stable name (the
test compares a crashed-and-restarted run with a fault-free one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import sys
import tempfile
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from mercato.app import create_app
from mercato.app.runtime import Runtime
from mercato.bus.registry import REGISTRY
from mercato.bus.service import owes_anything, progress_signal
from mercato.config import Settings
from mercato.kit.clock import utcnow
from mercato.kit.db import Database
from mercato.models import (
    Coupon,
    CouponRedemption,
    Entitlement,
    EventDelivery,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    LicenceKey,
    Listing,
    Notification,
    Order,
    OrderLine,
    OutboxEvent,
    Payment,
    Publisher,
    SandboxPayment,
    Shipment,
    User,
)

V1 = "/api/v1"
PASSWORD = "a perfectly fine saga password"
NAMESPACE = uuid.UUID("5a6a0000-0000-4000-8000-00000000f001")
ADDRESS = {"name": "Bob Buyer", "line1": "1 Main Street", "city": "Berlin", "postal_code": "10115", "country": "DE"}
TERMINAL = {"completed", "failed", "expired", "canceled"}
STABLE = TERMINAL | {"awaiting_payment", "awaiting_shipment", "shipped"}
BUYERS = ("ann", "bob", "cid", "dee")
SAGA_EVENTS = ("order.", "wallet.", "entitlement.", "payment.")
SAGA_SUBSCRIBERS = ("orders.", "wallet.", "library.", "earnings.", "payments.")


@dataclass(frozen=True)
class Scenario:
    """Everything the seed decides: names, prices and what each buyer's wallet holds."""

    seed: int
    app_price: int
    keyed_price: int
    box_price: int

    @classmethod
    def of(cls, seed: int) -> Scenario:
        rng = random.Random(seed)
        return cls(seed, rng.randrange(500, 3000), rng.randrange(500, 3000), rng.randrange(1000, 5000))

    def email(self, who: str) -> str:
        return f"{who}-{self.seed}@saga.example.org"

    @property
    def publisher(self) -> str:
        return f"saga-pub-{self.seed}"

    def slug(self, listing: str) -> str:
        return f"saga-{listing}-{self.seed}"

    @property
    def coupon(self) -> str:
        return f"SAGA-{self.seed}"

    @property
    def keys(self) -> list[str]:
        return [f"KEY-{self.seed}-1", f"KEY-{self.seed}-2"]

    def idempotency_key(self, step: str) -> str:
        return f"saga-{self.seed}-{step}"

    @property
    def funding(self) -> dict[str, int]:
        """Wallet money per buyer: enough for everything, except dee (a third of the app:
        the rest comes through the sandbox provider)."""
        return {"ann": self.app_price + self.keyed_price, "bob": self.keyed_price + 2 * self.box_price,
                "cid": self.keyed_price + self.app_price, "dee": self.app_price // 3}

    @property
    def orders(self) -> list[tuple[str, str, list[tuple[str, str, int]], dict[str, Any]]]:
        """(step, buyer, [(listing, delivery, quantity)], extra body), placed in this order."""
        return [
            ("ann-app", "ann", [("app", "digital", 1)], {}),
            ("ann-keyed", "ann", [("keyed", "digital", 1)], {}),
            ("bob-keyed", "bob", [("keyed", "digital", 1)], {}),
            ("cid-keyed", "cid", [("keyed", "digital", 1)], {}),   # the pool is empty: fails, refunded
            ("bob-box", "bob", [("box", "physical", 2)], {"shipping_address": ADDRESS}),
            ("dee-app", "dee", [("app", "digital", 1)], {}),       # a shortfall, paid through the provider
            ("cid-coupon", "cid", [("app", "digital", 1)], {"coupon": self.coupon}),
        ]


class HarnessError(RuntimeError):
    pass


def harness_settings(database_url: str, data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, database_url=database_url, testing=True,
                    secret_key="saga-harness-secret-key-of-reasonable-length-0123456789",
                    idempotency_lease_seconds=1, bus_redelivery_timeout_seconds=1.0,
                    bus_sweep_interval_seconds=0.2, bus_retry_base_seconds=0.05, bus_retry_max_seconds=0.5,
                    sandbox_confirm_delay_seconds=0.1)


# --- the store, driven as its users would ------------------------------------------------------

class Store:
    def __init__(self, runtime: Runtime, client: httpx.AsyncClient, scenario: Scenario) -> None:
        self.runtime = runtime
        self.db = runtime.db
        self.client = client
        self.scenario = scenario
        self.tokens: dict[str, dict[str, str]] = {}
        self.listings: dict[str, str] = {}

    async def call(self, method: str, path: str, who: str, *, expect: tuple[int, ...] = (200, 201),
                   **kwargs: Any) -> dict[str, Any]:
        headers = {**self.tokens[who], **kwargs.pop("headers", {})}
        for _ in range(100):
            response = await self.client.request(method, path, headers=headers, **kwargs)
            if response.status_code in expect:
                return response.json()  # type: ignore[no-any-return]
            if response.status_code == 409 and response.json().get("code") == "idempotency_key_in_flight":
                await asyncio.sleep(0.2)  # the claim of a crashed request: its lease runs out
                continue
            raise HarnessError(f"{method} {path} as {who}: {response.status_code} {response.text}")
        raise HarnessError(f"{method} {path} as {who}: the key stayed in flight")

    async def login(self, who: str) -> None:
        response = await self.client.post(f"{V1}/auth/login", json={
            "email": self.scenario.email(who), "password": PASSWORD})
        if response.status_code != 200:
            raise HarnessError(f"login of {who}: {response.status_code} {response.text}")
        self.tokens[who] = {"Authorization": f"Bearer {response.json()['access_token']}"}

    # -- set-up --

    async def ensure_user(self, who: str, *roles: str) -> uuid.UUID:
        from mercato.accounts import service as accounts

        email = self.scenario.email(who)
        async with self.db.read_session() as session:
            found = await session.scalar(select(User.id).where(User.email == email))
        if found is None:
            async with self.db.transaction() as session:
                found = (await accounts.create_user(session, self.runtime, email=email, password=PASSWORD,
                                                    roles=["user", *roles])).id
        return found

    async def fund(self, who: str, user_id: uuid.UUID, amount: int) -> None:
        """Money in the wallet as a succeeded top-up puts it there; idempotent by its payment id."""
        from mercato.wallet import service as wallet

        async with self.db.transaction() as session:
            await wallet.credit_payment(session, payment_id=uuid.uuid5(NAMESPACE, f"fund:{self.scenario.email(who)}"),
                                        user_id=user_id, provider="sandbox", amount=amount,
                                        currency=self.runtime.settings.currency)

    async def ensure_listing(self, name: str, offers: list[dict[str, Any]]) -> None:
        from mercato.catalog import repository as catalog

        slug = self.scenario.slug(name)
        async with self.db.read_session() as session:
            found = (await session.execute(select(Listing.id, Listing.status).where(Listing.slug == slug))).first()
        if found is None:
            created = await self.call("POST", f"{V1}/listings", "dev", json={
                "publisher": self.scenario.publisher, "slug": slug, "name": f"Saga {name}", "kind": "app",
                "offers": offers})
            found = (uuid.UUID(created["id"]), created["status"])
        listing_id, status = found
        if status == "draft":  # as review's approval does (tests/library/support.py publish_listing)
            async with self.db.transaction() as session:
                now = utcnow()
                await catalog.transition(session, listing_id, from_=("draft",), to="published", at=now,
                                         published_at=now)
        self.listings[name] = str(listing_id)

    async def set_up(self) -> None:
        s, currency = self.scenario, self.runtime.settings.currency
        await self.ensure_user("admin", "marketplace_admin")
        await self.ensure_user("dev")
        buyers = {who: await self.ensure_user(who) for who in BUYERS}
        for who, amount in s.funding.items():
            await self.fund(who, buyers[who], amount)
        for who in ("admin", "dev", *BUYERS):
            await self.login(who)
        async with self.db.read_session() as session:
            publisher = await session.scalar(select(Publisher.id).where(Publisher.slug == s.publisher))
        if publisher is None:
            await self.call("POST", f"{V1}/publishers", "admin", json={
                "slug": s.publisher, "name": "Saga Publisher", "owner_email": s.email("dev")})
            await self.login("dev")  # a member now
        for name, delivery, amount in (("app", "digital", s.app_price), ("keyed", "digital", s.keyed_price),
                                       ("box", "physical", s.box_price)):
            offer = {"delivery": delivery, "price": {"amount": amount, "currency": currency}}
            await self.ensure_listing(name, [{**offer, "stock": 5} if delivery == "physical" else offer])
        async with self.db.read_session() as session:
            keys = await session.scalar(select(func.count()).select_from(LicenceKey)
                                        .where(LicenceKey.listing_id == uuid.UUID(self.listings["keyed"])))
            coupon = await session.scalar(select(Coupon.id).where(Coupon.code == s.coupon))
        if not keys:
            await self.call("POST", f"{V1}/listings/{s.slug('keyed')}/keys", "dev", json={"keys": s.keys})
        if coupon is None:
            await self.call("POST", f"{V1}/coupons", "dev", json={
                "code": s.coupon, "kind": "percent", "value": 25, "scope": "publisher", "publisher": s.publisher})

    # -- the orders --

    async def settled(self, order_id: str, timeout: float = 60.0) -> str:
        """The order's state once it is stable and the bus owes nothing (no event left to
        relay, no delivery pending, no observer behind); a dead letter is an error. Looked at
        again whenever the bus makes progress."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        signal = progress_signal()
        while True:
            signal.clear()
            owed = await owes_anything(self.db, REGISTRY)
            async with self.db.read_session() as session:
                status = await session.scalar(select(Order.status).where(Order.id == uuid.UUID(order_id)))
                dead = await session.scalar(select(func.count()).select_from(EventDelivery)
                                            .where(EventDelivery.state == "dead"))
            if dead:
                raise HarnessError(f"{dead} dead letters")
            if status in STABLE and not owed:
                return status  # type: ignore[no-any-return]
            left = deadline - loop.time()
            if left <= 0:
                raise HarnessError(f"order {order_id} is {status}, the bus owes work: {owed}, after {timeout}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signal.wait(), timeout=min(left, 0.5))

    async def checkout(self, step: str, who: str, items: list[tuple[str, str, int]], extra: dict[str, Any]) -> str:
        body = {"items": [{"listing_id": self.listings[name], "delivery": delivery, "quantity": quantity}
                          for name, delivery, quantity in items], **extra}
        # wait > 0: the endpoint commits before it waits (the saga.after_checkout_commit window).
        order = await self.call("POST", f"{V1}/orders", who, json=body, params={"wait": 0.05},
                                headers={"Idempotency-Key": self.scenario.idempotency_key(step)})
        return str(order["id"])

    async def ship_and_deliver(self, order_id: str) -> None:
        async with self.db.read_session() as session:
            shipments = set(await session.scalars(select(Shipment.status)
                                                  .where(Shipment.order_id == uuid.UUID(order_id))))
        if "awaiting" in shipments:
            await self.call("POST", f"{V1}/orders/{order_id}/ship", "dev",
                            json={"carrier": "DHL", "tracking_number": f"TRACK-{self.scenario.seed}"})
        await self.call("POST", f"{V1}/orders/{order_id}/deliver", "dev")

    async def pay_shortfall(self, order_id: str, who: str) -> None:
        """The buyer pays what the wallet lacks through the sandbox's pay page. One payment
        per order: a restart picks up the one started before the crash."""
        async with self.db.read_session() as session:
            payment = await session.scalar(select(Payment).where(Payment.order_id == uuid.UUID(order_id))
                                           .order_by(Payment.created_at.desc()).limit(1))
        if payment is None:
            started = await self.call("POST", f"{V1}/orders/{order_id}/pay", who)
            payment_id = uuid.UUID(started["payment"]["id"])
        else:
            payment_id = payment.id
        async with self.db.read_session() as session:
            checkout = await session.scalar(select(SandboxPayment)
                                            .where(SandboxPayment.merchant_payment_id == payment_id))
        if checkout is None:
            raise HarnessError(f"no sandbox checkout for payment {payment_id}")
        sandbox = self.runtime.payments.providers["sandbox"]
        if checkout.status == "open":
            path = f"/sandbox/pay/{payment_id}"
            page = await self.client.get(path)
            paid = await self.client.post(path, data={"card_number": "4242424242424242", "action": "approve"})
            if page.status_code != 200 or paid.status_code != 200:
                raise HarnessError(f"the pay page answered {page.status_code}, {paid.status_code}: {paid.text}")
        elif payment is not None and payment.status not in ("succeeded", "failed", "canceled", "expired"):
            sandbox.send_webhook(self.db, checkout)  # the provider retries a webhook a crash swallowed
        await self.runtime.payments.drain()

    async def run(self) -> None:
        await self.set_up()
        for step, who, items, extra in self.scenario.orders:
            order_id = await self.checkout(step, who, items, extra)
            status = await self.settled(order_id)
            if status in ("awaiting_shipment", "shipped"):
                await self.ship_and_deliver(order_id)
                status = await self.settled(order_id)
            if status == "awaiting_payment":
                await self.pay_shortfall(order_id, who)
                status = await self.settled(order_id)
            if status not in TERMINAL:
                raise HarnessError(f"order {step} ended {status}")


# --- the end state, comparable across databases -------------------------------------------------

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


async def snapshot(database_url: str) -> dict[str, Any]:
    """Orders per idempotency key, ledger balances and transactions per named account,
    entitlements, stock and sales, licence keys handed out, coupon redemptions, payments,
    notifications and events: ids replaced by emails, slugs and idempotency keys."""
    db = Database(database_url)
    try:
        async with db.read_session() as session:
            names: dict[uuid.UUID, str] = {}
            users = (await session.execute(select(User.id, User.email))).all()
            names.update({row.id: row.email for row in users})
            names.update({uuid.uuid5(NAMESPACE, f"fund:{row.email}"): f"fund:{row.email}" for row in users})
            names.update({row.id: row.slug for row in (await session.execute(select(Publisher.id, Publisher.slug)))})
            names.update({row.id: row.slug for row in (await session.execute(select(Listing.id, Listing.slug)))})
            orders = list(await session.scalars(select(Order)))
            names.update({order.id: f"order:{order.idempotency_key}" for order in orders})
            payments = list(await session.scalars(select(Payment)))
            names.update({p.id: f"payment-for:{names.get(p.order_id, p.order_id)}" for p in payments})
            lines = list(await session.scalars(select(OrderLine)))
            names.update({line.id: f"{names[line.order_id]}/{line.position}" for line in lines})

            def name(value: uuid.UUID | str | None) -> str | None:
                if value is None:
                    return None
                return _UUID.sub(lambda m: names.get(uuid.UUID(m.group()), "?"), str(value))

            keys = {row.id: row.key for row in await session.scalars(select(LicenceKey))}
            order_state = {
                order.idempotency_key: {
                    "buyer": name(order.user_id), "status": order.status, "subtotal": order.subtotal,
                    "discount": order.discount, "total": order.total, "refunded": order.refunded_amount,
                    "coupon": order.coupon_code, "failure": name(order.failure_reason),
                    "paid": order.paid_at is not None, "completed": order.completed_at is not None,
                    "lines": sorted((line.position, name(line.listing_id), line.delivery, line.quantity, line.total,
                                     keys.get(line.licence_key_id) if line.licence_key_id else None)
                                    for line in lines if line.order_id == order.id)}
                for order in orders}
            accounts = {row.id: name(row.key) for row in await session.scalars(select(LedgerAccount))}
            balances = {accounts[row.id]: row.balance for row in await session.scalars(select(LedgerAccount))}
            entries: dict[uuid.UUID, list[tuple[str | None, int]]] = {}
            for entry in await session.scalars(select(LedgerEntry)):
                entries.setdefault(entry.transaction_id, []).append((accounts[entry.account_id], entry.amount))
            transactions = sorted((row.kind, name(row.reference), tuple(sorted(entries.get(row.id, []))))
                                  for row in await session.scalars(select(LedgerTransaction)))
            references = Counter(reference for _, reference, _ in transactions)
            entitlements = sorted((name(row.user_id), name(row.listing_id), row.source, name(row.order_id),
                                   row.revoked_at is not None) for row in await session.scalars(select(Entitlement)))
            listings = {row.slug: {"stock": row.stock, "sales": row.sale_count}
                        for row in await session.scalars(select(Listing))}
            handed_out = {row.key: name(row.order_line_id) for row in await session.scalars(select(LicenceKey))}
            coupons = {row.code: row.redemptions for row in await session.scalars(select(Coupon))}
            redemptions = sorted((name(row.user_id), name(row.order_id))
                                 for row in await session.scalars(select(CouponRedemption)))
            payment_state = sorted((name(p.id), p.purpose, p.status, p.amount, p.refunded_amount) for p in payments)
            notified = Counter(f"{name(row.user_id)} {row.kind}"
                               for row in await session.scalars(select(Notification)))
            # The saga's own events and subscribers (other modules' reactions are theirs to test).
            events = Counter(kind for kind in await session.scalars(select(OutboxEvent.type))
                             if kind.startswith(SAGA_EVENTS))
            deliveries = Counter(f"{row.subscriber} {row.state}" for row in await session.scalars(select(EventDelivery))
                                 if row.subscriber.startswith(SAGA_SUBSCRIBERS))
    finally:
        await db.dispose()
    return {"orders": order_state, "balances": balances, "transactions": transactions,
            "duplicate_references": sorted(r for r, n in references.items() if n > 1),
            "entitlements": entitlements, "listings": listings, "licence_keys": handed_out,
            "coupons": coupons, "redemptions": redemptions, "payments": payment_state,
            "notifications": dict(sorted(notified.items())), "events": dict(sorted(events.items())),
            "deliveries": dict(sorted(deliveries.items()))}


# --- the process -----------------------------------------------------------------------------------

async def run(database_url: str, seed: int, data_dir: Path, timeout: float) -> int:
    runtime = Runtime.from_settings(harness_settings(database_url, data_dir))
    app = create_app(runtime=runtime)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://mercato.test") as client:
                await asyncio.wait_for(Store(runtime, client, Scenario.of(seed)).run(), timeout)
    except (HarnessError, TimeoutError) as exc:
        print(f"saga harness: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    finally:
        await runtime.close()
    return 0


def serve() -> int:
    """``--serve``: one run per line of stdin (JSON: ``database_url``, ``seed``, ``data_dir``,
    ``failpoints``, ``log``), each in a new process forked from this one, which imported the
    store once — a run then costs its work, not seconds of imports. The child's output goes
    to ``log``; the answer is ``{"exit": code}``, a line on stdout (137 after a crash)."""
    from mercato.kit import failpoints

    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the child: a store process of its own, like `python -m` gives
            code = 70
            try:
                log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(log, 1)
                os.dup2(log, 2)
                failpoints.configure(request.get("failpoints"))
                code = asyncio.run(run(request["database_url"], int(request["seed"]), Path(request["data_dir"]),
                                       float(request.get("timeout", 180))))
            except Exception:  # into the child's log, then its exit code says it failed
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"exit": os.waitstatus_to_exitcode(status)}), flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database_url", nargs="?",
                        help="a migrated database (sqlite+aiosqlite:///… or postgresql+asyncpg://…)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, help="the store's data dir (default: a temporary one)")
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--serve", action="store_true", help="take runs from stdin (see serve())")
    args = parser.parse_args()
    if args.serve:
        return serve()
    if args.database_url is None:
        parser.error("give DATABASE_URL (or --serve)")
    if args.data_dir is not None:
        return asyncio.run(run(args.database_url, args.seed, args.data_dir, args.timeout))
    with tempfile.TemporaryDirectory(prefix="mercato-saga-") as directory:
        return asyncio.run(run(args.database_url, args.seed, Path(directory), args.timeout))


if __name__ == "__main__":
    sys.exit(main())
