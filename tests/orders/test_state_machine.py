"""QUALITY M10: a Hypothesis state machine over orders, payments and refunds.

One store per run (its own database, the app in-process with its embedded bus, a
publisher selling two digital and two physical listings); each example brings two new
buyers and the stock as new. The rules
drive it through the HTTP API: top-ups through the sandbox provider (approved or declined),
checkouts of digital and physical items (from the wallet, or awaiting a provider payment for
the shortfall, which may be approved or declined, late or in excess), the buyer's cancel,
the expiry sweep with the clock moved past every deadline, shipping and delivery, the
publisher's cancel, and refunds (automatic, or approved or rejected by the publisher).
The bus is drained after every step.

After every step INV-1..5 hold on the database (tests/support/invariants.py), and the store
agrees with a model of what DOMAIN.md says should have happened: every wallet, the
publisher's earnings, the platform's revenue, escrow, every order's state and every stock.

Hypothesis does not run async rules (HypothesisWorks/hypothesis#3712), so the machine is
synchronous and runs the store on an event loop of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select, update

from mercato.app import create_app
from mercato.app.runtime import Runtime
from mercato.config import Settings
from mercato.kit.clock import utcnow
from mercato.models import Listing, Order
from mercato.orders import service as orders
from mercato.policies import service as policies
from tests.support.actors import Actor, Actors
from tests.support.backends import PG_URL, REDIS_URL, admin_url, pg_admin
from tests.support.invariants import (
    assert_entitlements_follow_orders,
    assert_money_invariants,
)
from tests.support.orders import (
    ADDRESS,
    V1,
    Seller,
    account_balance,
    balance,
    fund,
    quiet,
    stock_of,
)
from tests.support.payments import delivered, pay, read_payment, topup

T = TypeVar("T")
CARD_OK, CARD_DECLINED = "4242424242424242", "4000000000000002"
DIGITAL = {"app": 500, "tool": 1200}
PHYSICAL = {"box": (700, 12), "kit": (333, 6)}  # price, stock (333 × 3 units: refunds in uneven shares)
UNPAID = ("created", "awaiting_payment")
FINAL = ("expired", "canceled", "failed", "refunded")
ACTIONS = {"awaiting_payment": ("pay", "buyer_cancels", "pay"),
           "awaiting_shipment": ("ship", "publisher_cancels", "ship"),
           "shipped": ("deliver", "publisher_cancels", "deliver"),
           "completed": ("request_refund", "buyer_cancels", "request_refund"),
           "partially_refunded": ("request_refund",)}
BUYERS = st.integers(0, 1)
PICK = st.integers(0, 1_000_000)
ITEMS = st.lists(st.tuples(st.sampled_from([*PHYSICAL, *DIGITAL]), st.integers(1, 3)), min_size=1, max_size=3,
                 unique_by=lambda chosen: chosen[0])
ADVANCE = st.tuples(st.just("advance"), PICK, PICK, st.booleans(), st.integers(1, 3))
ACTION = st.one_of(st.tuples(st.just("buy"), BUYERS, ITEMS), ADVANCE, ADVANCE, ADVANCE,
                   st.tuples(st.just("top_up"), BUYERS, st.sampled_from([300, 1000, 2500]), st.booleans()),
                   st.tuples(st.just("expiry_sweep"), st.sampled_from([60, 5])))


def units_value(total: int, quantity: int, already: int, more: int) -> int:
    """DOMAIN.md "Refund": the k-th unit of a line is worth ⌊T·k/n⌋ − ⌊T·(k−1)/n⌋."""
    return total * (already + more) // quantity - total * already // quantity


@dataclass
class Line:
    id: str
    listing: str
    delivery: str
    quantity: int
    total: int
    refunded: int = 0


@dataclass
class Placed:
    id: str
    buyer: int
    lines: list[Line]
    status: str = "created"
    refunded: int = 0

    @property
    def total(self) -> int:
        return sum(line.total for line in self.lines)

    @property
    def physical(self) -> bool:
        return any(line.delivery == "physical" for line in self.lines)


@dataclass
class Pending:
    body: dict[str, Any]
    order: Placed


@dataclass
class Requested:
    id: str
    order: Placed
    wanted: list[tuple[Line, int]]


@dataclass
class Shop:
    """The store every example of one run shares (its own database, the app in-process with
    its embedded bus, a publisher) and the event loop it lives on. Each example brings its
    own listings and buyers and compares the shared accounts with what they were when it began."""

    loop: asyncio.AbstractEventLoop
    runtime: Runtime
    client: httpx.AsyncClient
    actors: Actors
    seller: Seller
    listings: dict[str, dict[str, Any]]
    commission_bps: int


async def open_shop(loop: asyncio.AbstractEventLoop, template: str, directory: Path,
                    exits: contextlib.AsyncExitStack) -> Shop:
    if PG_URL:
        name = f"mercato_sm_{uuid.uuid4().hex[:12]}"
        await pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        exits.push_async_callback(pg_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        url = admin_url(name)
    else:
        shutil.copyfile(template, directory / "mercato.db")
        url = f"sqlite+aiosqlite:///{directory / 'mercato.db'}"
    settings = Settings(data_dir=directory, database_url=url, testing=True,
                        secret_key="test-secret-key-of-reasonable-length-0123456789",
                        redis_url=REDIS_URL, redis_namespace=f"mercato-test-{uuid.uuid4().hex[:8]}")
    runtime = Runtime.from_settings(settings)
    exits.push_async_callback(runtime.close)
    if REDIS_URL:
        exits.push_async_callback(runtime.limiter.reset)
    app = create_app(runtime=runtime)
    await exits.enter_async_context(app.router.lifespan_context(app))
    client = await exits.enter_async_context(
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mercato.test"))
    actors = Actors(client, runtime)
    async with runtime.db.read_session() as session:
        commission_bps = (await policies.current(session)).commission_bps
    seller = await Seller.open(client, actors, runtime)
    listings = {name: await seller.listing(digital=price, name=name) for name, price in DIGITAL.items()}
    listings |= {name: await seller.listing(physical=price, stock=stock, name=name)
                 for name, (price, stock) in PHYSICAL.items()}
    return Shop(loop, runtime, client, actors, seller, listings, commission_bps)


class MoneyMachine(RuleBasedStateMachine):
    shop: Shop  # set by the test

    def __init__(self) -> None:
        super().__init__()
        self.listings = self.shop.listings
        self.buyers = self.run(self.arrange())
        self.start = self.run(self.accounts())
        # The model: what DOMAIN.md says the store holds (shared accounts: the change since the start).
        self.wallets = [0, 0]
        self.owned: list[set[str]] = [set(), set()]
        self.stock = {name: stock for name, (_, stock) in PHYSICAL.items()}
        self.earnings = 0
        self.revenue = 0
        self.orders: list[Placed] = []
        self.payments: list[Pending] = []
        self.refunds: list[Requested] = []

    async def arrange(self) -> list[Actor]:
        """Two new buyers, and the physical listings' stock back where a new listing starts
        (arranged on the database: orders of earlier examples are not touched again)."""
        async with self.shop.runtime.db.transaction() as session:
            for name, (_, stock) in PHYSICAL.items():
                await session.execute(update(Listing).where(Listing.id == uuid.UUID(self.listings[name]["id"]))
                                      .values(stock=stock))
        return [await self.shop.actors.create() for _ in range(2)]

    async def accounts(self) -> tuple[int, int, int]:
        runtime = self.shop.runtime
        return (await account_balance(runtime, "orders_escrow"),
                await account_balance(runtime, f"publisher_earnings:{self.shop.seller.publisher_id}"),
                await account_balance(runtime, "platform_revenue"))

    def teardown(self) -> None:
        """End this example's unpaid orders, so the next one's expiry sweep meets only its own."""
        async def close() -> None:
            async with self.shop.runtime.db.transaction() as session:
                await orders.expire_due(session, now=utcnow() + timedelta(hours=1))
            await self.settled()

        self.run(close())

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.shop.loop.run_until_complete(coroutine)

    # --- talking to the store ---------------------------------------------------------------------

    @property
    def client(self) -> httpx.AsyncClient:
        return self.shop.client

    @property
    def developer(self) -> Actor:
        return self.shop.seller.developer

    async def settled(self) -> None:
        """The provider's webhooks delivered and the bus quiet (the saga ran to its end)."""
        for _ in range(2):  # a delivery may start a provider refund, a webhook new events
            await delivered(self.shop.runtime)
            await quiet(self.shop.runtime)

    async def post(self, who: Actor, path: str, *, key: bool = False, **kwargs: Any) -> httpx.Response:
        headers = {**who.headers, **({"Idempotency-Key": uuid.uuid4().hex} if key else {})}
        return await self.client.post(f"{V1}{path}", headers=headers, **kwargs)

    def pick(self, statuses: tuple[str, ...], pick: int, *, physical: bool | None = None) -> Placed:
        candidates = self.with_status(statuses, physical=physical)
        return candidates[pick % len(candidates)]

    def with_status(self, statuses: tuple[str, ...], *, physical: bool | None = None) -> list[Placed]:
        return [order for order in self.orders if order.status in statuses
                and (physical is None or order.physical == physical)]

    # --- the model's saga ---------------------------------------------------------------------------

    def take(self, order: Placed) -> bool:
        """The wallet's debit: all of the total into escrow, or nothing."""
        if self.wallets[order.buyer] < order.total:
            return False
        self.wallets[order.buyer] -= order.total
        order.status = "paid"
        return True

    def after_paid(self, order: Placed) -> None:
        if order.physical:
            order.status = "awaiting_shipment"
        else:
            self.grant(order)

    def grant(self, order: Placed) -> None:
        """The library entitles the buyer (completing the order, settling the sale), or
        refuses a digital listing the buyer came to own meanwhile (failed, full refund)."""
        digital = {line.listing for line in order.lines if line.delivery == "digital"}
        if digital & self.owned[order.buyer]:
            order.status = "failed"
            self.wallets[order.buyer] += order.total
            return
        order.status = "completed"
        self.owned[order.buyer] |= digital
        for line in order.lines:
            fee = line.total * self.shop.commission_bps // 10_000
            self.earnings += line.total - fee
            self.revenue += fee

    def close_unpaid(self, order: Placed, status: str) -> None:
        order.status = status
        for line in order.lines:
            if line.delivery == "physical":
                self.stock[line.listing] += line.quantity

    def refund(self, order: Placed, wanted: list[tuple[Line, int]]) -> None:
        for line, quantity in wanted:
            amount = units_value(line.total, line.quantity, line.refunded, quantity)
            before = line.total * line.refunded // line.quantity  # what earlier refunds reversed
            line.refunded += quantity
            # The commission given back is that of the running refunded total, less what earlier
            # parts gave back: a line refunded in parts returns exactly the commission its sale took.
            bps = self.shop.commission_bps
            fee = (before + amount) * bps // 10_000 - before * bps // 10_000
            self.wallets[order.buyer] += amount
            self.earnings -= amount - fee
            self.revenue -= fee
            order.refunded += amount
            if line.delivery == "digital" and line.refunded == line.quantity:
                self.owned[order.buyer].discard(line.listing)
        order.status = "refunded" if order.refunded >= order.total else "partially_refunded"

    # --- the rule ------------------------------------------------------------------------------------
    # One rule whose argument says what happens next. Hypothesis's swarm testing switches whole
    # rules off per example, which starved the few examples this test can afford (a store's
    # bus takes a few tenths of a second per step) of checkouts or of everything after them;
    # inside one rule the choice is even, and a failing run still shrinks to the fewest steps.

    @initialize(amounts=st.tuples(*[st.sampled_from([0, 1500, 6000])] * 2))
    def wallets_hold(self, amounts: tuple[int, int]) -> None:
        """The buyers start with money in their wallets (as succeeded top-ups leave it)."""
        async def step() -> None:
            for buyer, amount in zip(self.buyers, amounts, strict=True):
                if amount:
                    await fund(self.shop.runtime, buyer, amount)

        self.run(step())
        self.wallets = list(amounts)

    @rule(action=ACTION)
    def act(self, action: tuple[Any, ...]) -> None:
        match action:
            case ("buy", buyer, items):
                self.buy(buyer, items)
            case ("advance", pick, choice, whole, quantity):
                self.advance(pick, choice, whole=whole, quantity=quantity)
            case ("top_up", buyer, amount, approve):
                self.top_up(buyer, amount, approve=approve)
            case ("expiry_sweep", minutes):
                self.expiry_sweep(minutes)

    def buy(self, buyer: int, items: list[tuple[str, int]]) -> None:
        """A checkout: paid from the wallet at once, or awaiting payment for the shortfall;
        refused (nothing changes) for a listing owned already or stock too short."""
        items = [(name, 1 if name in DIGITAL else quantity) for name, quantity in items]
        # Buyers soon own both digital listings: leave those out of the basket, unless
        # nothing else is in it (then the store must refuse it as owned already).
        items = [(name, quantity) for name, quantity in items if name not in self.owned[buyer]] or items
        owned = any(name in self.owned[buyer] for name, _ in items)
        short = any(name in PHYSICAL and quantity > self.stock[name] for name, quantity in items)
        body: dict[str, Any] = {"items": [
            {"listing_id": self.listings[name]["id"], "delivery": "digital" if name in DIGITAL else "physical",
             "quantity": quantity} for name, quantity in items]}
        if any(name in PHYSICAL for name, _ in items):
            body["shipping_address"] = ADDRESS
        response = self.run(self.step(self.buyers[buyer], "/orders", key=True, json=body))
        if owned or short:
            expected = "already_owned" if owned else "out_of_stock"
            assert (response.status_code, response.json()["code"]) == (409, expected), response.text
            return
        assert response.status_code == 201, response.text
        by_listing = {line["listing_id"]: line for line in response.json()["lines"]}
        lines = []
        for name, quantity in items:
            line = by_listing[self.listings[name]["id"]]
            lines.append(Line(line["id"], name, line["delivery"], quantity, line["total"]["amount"]))
            if name in PHYSICAL:
                self.stock[name] -= quantity
        order = Placed(response.json()["id"], buyer, lines)
        self.orders.append(order)
        if self.take(order):
            self.after_paid(order)
        else:
            order.status = "awaiting_payment"

    def advance(self, pick: int, choice: int, *, whole: bool, quantity: int) -> None:
        """The next thing that can happen to an order with something left to happen (or, when
        none has, a step its state refuses)."""
        waiting = {id(pending.order) for pending in self.payments} | {id(refund.order) for refund in self.refunds}
        going = [order for order in self.orders if order.status not in FINAL or id(order) in waiting] or self.orders
        if not going:
            return
        order = going[pick % len(going)]
        started = [pending for pending in self.payments if pending.order is order]
        requested = [refund for refund in self.refunds if refund.order is order]
        actions = ACTIONS.get(order.status, ("buyer_cancels", "request_refund"))
        if started and order.status not in UNPAID:
            actions = ("late_payment",)
        elif requested:
            actions = ("publisher_decides", "publisher_decides", *actions)
        match actions[choice % len(actions)]:
            case "pay" if started:  # the payer goes on to the provider's page (and mostly approves)
                self.settle_payment(started[0], approve=quantity != 2)
            case "pay":
                self.pay_order(order)
            case "late_payment":  # approved after the order was paid otherwise, expired or canceled
                self.settle_payment(started[0], approve=quantity != 2)
            case "publisher_decides":
                self.publisher_decides(requested[0], approve=quantity != 2)
            case "buyer_cancels":
                self.buyer_cancels(order)
            case "ship":
                self.ship(order)
            case "deliver":
                self.deliver(order)
            case "publisher_cancels":
                self.publisher_cancels(order)
            case _:
                self.request_refund(order, whole=whole, line=choice // 7, quantity=quantity)

    def expiry_sweep(self, minutes: int) -> None:
        """The sweep with the clock moved: past every deadline (15 minutes) every unpaid
        order expires; before it, none."""
        async def step() -> int:
            async with self.shop.runtime.db.transaction() as session:
                expired = await orders.expire_due(session, now=utcnow() + timedelta(minutes=minutes))
            await self.settled()
            return expired

        unpaid = self.with_status(UNPAID) if minutes > 15 else []
        assert self.run(step()) == len(unpaid)
        for order in unpaid:
            self.close_unpaid(order, "expired")

    def top_up(self, buyer: int, amount: int, *, approve: bool) -> None:
        async def step() -> None:
            started = await topup(self.client, self.buyers[buyer], amount)
            assert (await pay(self.client, started, CARD_OK if approve else CARD_DECLINED)).status_code == 200
            await self.settled()
            read = await read_payment(self.client, self.buyers[buyer], started["id"])
            assert read["status"] == ("succeeded" if approve else "failed"), read

        self.run(step())
        if approve:
            self.wallets[buyer] += amount

    def publisher_decides(self, requested: Requested, *, approve: bool) -> None:
        self.refunds.remove(requested)
        if approve:
            response = self.run(self.step(self.developer, f"/refunds/{requested.id}/approve"))
            if any(line.refunded + units > line.quantity for line, units in requested.wanted):
                # Another refund took those units meanwhile: nobody refunds twice (M6).
                assert (response.status_code, response.json()["code"]) == (409, "already_refunded"), response.text
                self.refunds.append(requested)  # still requested: it may be rejected later
                return
            assert response.status_code == 200 and response.json()["status"] == "approved", response.text
            self.refund(requested.order, requested.wanted)
        else:
            response = self.run(self.step(self.developer, f"/refunds/{requested.id}/reject",
                                          json={"reason": "Opened and used"}))
            assert response.status_code == 200 and response.json()["status"] == "rejected", response.text

    # --- what happens to an order ----------------------------------------------------------------------------

    def settle_payment(self, pending: Pending, *, approve: bool) -> None:
        self.payments.remove(pending)
        order, amount = pending.order, pending.body["amount"]["amount"]
        buyer = self.buyers[order.buyer]

        async def step() -> dict[str, Any]:
            assert (await pay(self.client, pending.body, CARD_OK if approve else CARD_DECLINED)).status_code == 200
            await self.settled()
            return await read_payment(self.client, buyer, pending.body["id"])

        read = self.run(step())
        if not approve:
            assert read["status"] == "failed", read
            return
        self.wallets[order.buyer] += amount
        took = order.status in UNPAID and self.take(order)
        expected, refunded = "succeeded", 0
        if took or order.status not in UNPAID:
            # What the order did not need of this payment goes back through the provider.
            refunded = min(amount, self.wallets[order.buyer])
            self.wallets[order.buyer] -= refunded
            if refunded:
                expected = "refunded" if refunded == amount else "partially_refunded"
        if took:
            self.after_paid(order)
        assert (read["status"], read["refunded_amount"]["amount"]) == (expected, refunded), read

    def pay_order(self, order: Placed) -> None:
        """The buyer pays an order awaiting payment: from the wallet if it holds the total
        by now, otherwise a provider payment for the shortfall starts (settled later)."""
        shortfall = order.total - self.wallets[order.buyer]
        response = self.run(self.step(self.buyers[order.buyer], f"/orders/{order.id}/pay"))
        assert response.status_code == 200, response.text
        answer = response.json()
        if shortfall <= 0:
            assert answer["payment"] is None, answer
            assert self.take(order)
            self.after_paid(order)
        else:
            assert answer["payment"]["amount"]["amount"] == shortfall, answer
            self.payments.append(Pending(answer["payment"], order))

    def buyer_cancels(self, order: Placed) -> None:
        response = self.run(self.step(self.buyers[order.buyer], f"/orders/{order.id}/cancel"))
        if order.status in UNPAID:
            assert response.status_code == 200 and response.json()["status"] == "canceled", response.text
            self.close_unpaid(order, "canceled")
        else:
            assert (response.status_code, response.json()["code"]) == (409, "invalid_transition"), response.text

    def ship(self, order: Placed) -> None:
        response = self.run(self.step(self.developer, f"/orders/{order.id}/ship",
                                      json={"carrier": "DHL", "tracking_number": order.id[:8]}))
        assert response.status_code == 200 and response.json()["status"] == "shipped", response.text
        order.status = "shipped"

    def deliver(self, order: Placed) -> None:
        response = self.run(self.step(self.developer, f"/orders/{order.id}/deliver"))
        assert response.status_code == 200, response.text
        self.grant(order)

    def publisher_cancels(self, order: Placed) -> None:
        """Allowed while the order awaits shipment (full refund, stock back); refused after."""
        response = self.run(self.step(self.developer, f"/orders/{order.id}/cancel"))
        if order.status == "awaiting_shipment":
            assert response.status_code == 200 and response.json()["status"] == "canceled", response.text
            self.close_unpaid(order, "canceled")
            self.wallets[order.buyer] += order.total
        else:
            assert (response.status_code, response.json()["code"]) == (409, "invalid_transition"), response.text

    def request_refund(self, order: Placed, *, whole: bool, line: int, quantity: int) -> None:
        """Everything left, or some units of one line: automatic for digital lines (never
        downloaded here), the publisher's decision otherwise; refused for orders that did
        not complete."""
        if whole:
            wanted = [(each, each.quantity - each.refunded) for each in order.lines if each.refunded < each.quantity]
            body: dict[str, Any] = {"reason": "Changed my mind"}
        else:
            chosen = order.lines[line % len(order.lines)]
            wanted = [(chosen, quantity)]
            body = {"reason": "Changed my mind", "lines": [{"line_id": chosen.id, "quantity": quantity}]}
        response = self.run(self.step(self.buyers[order.buyer], f"/orders/{order.id}/refunds", key=True,
                                      json=body))
        if order.status not in ("completed", "partially_refunded"):
            assert (response.status_code, response.json()["code"]) == (409, "order_not_refundable"), response.text
            return
        if not wanted or any(each.refunded + units > each.quantity for each, units in wanted):
            assert (response.status_code, response.json()["code"]) == (409, "already_refunded"), response.text
            return
        assert response.status_code == 201, response.text
        if all(each.delivery == "digital" for each, _ in wanted):
            assert response.json()["status"] == "approved" and response.json()["automatic"], response.text
            self.refund(order, wanted)
        else:
            assert response.json()["status"] == "requested", response.text
            self.refunds.append(Requested(response.json()["id"], order, wanted))

    async def step(self, who: Actor, path: str, *, key: bool = False, **kwargs: Any) -> httpx.Response:
        response = await self.post(who, path, key=key, **kwargs)
        await self.settled()
        return response

    # --- after every step ----------------------------------------------------------------------------

    @invariant()
    def the_store_keeps_the_invariants_and_agrees_with_the_model(self) -> None:
        self.run(self.check())

    async def check(self) -> None:
        runtime = self.shop.runtime
        await assert_money_invariants(runtime.db)
        await assert_entitlements_follow_orders(runtime.db)
        wallets = [await balance(runtime, buyer) for buyer in self.buyers]
        assert wallets == self.wallets, (wallets, self.wallets)
        async with runtime.db.read_session() as session:
            states = dict((await session.execute(select(Order.id, Order.status).where(
                Order.user_id.in_([uuid.UUID(buyer.id) for buyer in self.buyers])))).all())
        assert {str(order_id): status for order_id, status in states.items()} == \
            {order.id: order.status for order in self.orders}
        stock = {name: await stock_of(runtime, self.listings[name]["id"]) for name in PHYSICAL}
        assert stock == self.stock, (stock, self.stock)
        held = sum(order.total for order in self.with_status(("paid", "awaiting_shipment", "shipped")))
        escrow, earnings, revenue = (now - then for now, then in zip(await self.accounts(), self.start, strict=True))
        assert (escrow, earnings, revenue) == (held, self.earnings, self.revenue)


def test_orders_payments_and_refunds_keep_the_money_invariants(database_template: str, tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    exits = contextlib.AsyncExitStack()
    try:
        MoneyMachine.shop = loop.run_until_complete(open_shop(loop, database_template, tmp_path, exits))
        run_state_machine_as_test(MoneyMachine, settings=hypothesis_settings(
            max_examples=10, stateful_step_count=20, deadline=None, derandomize=True, database=None,
            suppress_health_check=list(HealthCheck)))
    finally:
        loop.run_until_complete(exits.aclose())
        loop.close()
