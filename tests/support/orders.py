"""Arranging checkouts for the order, saga and fulfilment tests: a publisher with
published listings (digital, physical), funded wallets, and helpers to order and wait."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select

from mercato.app.runtime import Runtime
from mercato.catalog import service as catalog
from mercato.models import LedgerAccount, Listing, Order, OutboxEvent
from mercato.wallet import service as wallet
from tests.library.support import new_slug, publish_listing
from tests.support.actors import Actor, Actors
from tests.support.bus import settled

V1 = "/api/v1"
ADDRESS = {"name": "Ada Buyer", "line1": "1 Main Street", "city": "Berlin", "postal_code": "10115", "country": "DE"}
SETTLED = {"completed", "failed", "expired", "canceled", "awaiting_payment", "awaiting_shipment", "shipped"}


@dataclass
class Seller:
    """A developer owning a publisher, creating and publishing listings through the API."""

    client: httpx.AsyncClient
    runtime: Runtime
    developer: Actor
    slug: str
    publisher_id: str

    @classmethod
    async def open(cls, client: httpx.AsyncClient, actors: Actors, runtime: Runtime) -> Seller:
        developer = await actors.create()
        publisher = await actors.publisher(developer)
        developer = await actors.login(developer.email, developer.password, user_id=developer.id)
        return cls(client, runtime, developer, publisher["slug"], publisher["id"])

    async def listing(self, *, digital: int | None = None, physical: int | None = None,
                      stock: int | None = None, name: str = "Test Listing") -> dict[str, Any]:
        offers: list[dict[str, Any]] = []
        if digital is not None:
            offers.append({"delivery": "digital", "price": {"amount": digital, "currency": "USD"}})
        if physical is not None:
            offers.append({"delivery": "physical", "price": {"amount": physical, "currency": "USD"},
                           "stock": stock if stock is not None else 10})
        response = await self.client.post(f"{V1}/listings", headers=self.developer.headers, json={
            "publisher": self.slug, "slug": new_slug(), "name": name, "kind": "app", "offers": offers})
        assert response.status_code == 201, response.text
        listing: dict[str, Any] = response.json()
        await publish_listing(self.runtime, listing["id"])
        return listing


async def fund(runtime: Runtime, who: Actor, amount: int) -> uuid.UUID:
    """Money in the buyer's wallet, as a succeeded provider payment would put it there."""
    payment_id = uuid.uuid4()
    async with runtime.db.transaction() as session:
        await wallet.credit_payment(session, payment_id=payment_id, user_id=uuid.UUID(who.id), provider="sandbox",
                                    amount=amount, currency="USD")
    return payment_id


async def balance(runtime: Runtime, who: Actor | str) -> int:
    async with runtime.db.read_session() as session:
        return await wallet.balance(session, uuid.UUID(who if isinstance(who, str) else who.id))


async def account_balance(runtime: Runtime, key: str) -> int:
    async with runtime.db.read_session() as session:
        found = await session.scalar(select(LedgerAccount.balance).where(LedgerAccount.key == key))
        return int(found or 0)


async def stock_of(runtime: Runtime, listing_id: str) -> int | None:
    async with runtime.db.read_session() as session:
        return (await catalog.get_by_id(session, uuid.UUID(listing_id))).stock


def item(listing: dict[str, Any], delivery: str = "digital", quantity: int = 1) -> dict[str, Any]:
    return {"listing_id": listing["id"], "delivery": delivery, "quantity": quantity}


async def place(client: httpx.AsyncClient, buyer: Actor, items: list[dict[str, Any]], *, key: str | None = None,
                wait: float | None = None, **body: Any) -> httpx.Response:
    params = {"wait": wait} if wait else None
    return await client.post(f"{V1}/orders", headers={**buyer.headers, "Idempotency-Key": key or uuid.uuid4().hex},
                             json={"items": items, **body}, params=params)


async def order_of(client: httpx.AsyncClient, who: Actor, order_id: str, *, wait: float | None = None
                   ) -> dict[str, Any]:
    response = await client.get(f"{V1}/orders/{order_id}", headers=who.headers,
                                params={"wait": wait} if wait else None)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def until(runtime: Runtime, order_id: str, *statuses: str, timeout: float = 60.0) -> str:
    """Wait until the order is in one of ``statuses`` (the saga runs in the background)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        async with runtime.db.read_session() as session:
            status = await session.scalar(select(Order.status).where(Order.id == uuid.UUID(order_id)))
        if status in statuses:
            return status  # type: ignore[no-any-return]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"order {order_id} is {status}, not {statuses} after {timeout}s; "
                                 f"deliveries: {await _deliveries_of(runtime, order_id)}")
        await asyncio.sleep(0.05)


async def quiet(runtime: Runtime, timeout: float = 30.0) -> None:
    """Wait until the bus owes nothing: every event relayed, delivered and observed (INV-7)."""
    await settled(runtime, timeout=timeout)


async def event_types(runtime: Runtime, order_id: str) -> list[str]:
    async with runtime.db.read_session() as session:
        rows = await session.scalars(select(OutboxEvent.type).where(OutboxEvent.subject == order_id)
                                     .order_by(OutboxEvent.sequence))
        return list(rows)


async def listing_row(runtime: Runtime, listing_id: str) -> Listing:
    async with runtime.db.read_session() as session:
        return await catalog.get_by_id(session, uuid.UUID(listing_id))


async def _deliveries_of(runtime: Runtime, subject: str) -> list[tuple[str, str, str, int, str | None]]:
    """What the bus did with the order's events (for a failing wait's message)."""
    from mercato.models import EventDelivery

    async with runtime.db.read_session() as session:
        rows = await session.execute(select(EventDelivery.event_type, EventDelivery.subscriber, EventDelivery.state,
                                            EventDelivery.attempts, EventDelivery.last_error)
                                     .where(EventDelivery.subject == subject))
        return [tuple(row) for row in rows]  # type: ignore[misc]


SHIPPING = {"carrier": "DHL", "tracking_number": "JD0001"}


async def paid_physical_order(client: httpx.AsyncClient, runtime: Runtime, buyer: Actor, seller: Seller,
                              *, price: int = 2500, quantity: int = 2, stock: int = 5) -> tuple[dict, dict]:  # type: ignore[type-arg]
    box = await seller.listing(physical=price, stock=stock)
    await fund(runtime, buyer, price * quantity)
    created = (await place(client, buyer, [item(box, "physical", quantity)], shipping_address=ADDRESS,
                           wait=20)).json()
    assert created["status"] == "awaiting_shipment", created
    return created, box
