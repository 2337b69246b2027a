"""Arranging payments through the API and the sandbox provider's pay page."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from sqlalchemy import func, select

from mercato.app.runtime import Runtime
from mercato.models import LedgerTransaction
from mercato.payments.providers.sandbox import SandboxProvider, sign
from tests.support.actors import Actor

V1 = "/api/v1"
T = TypeVar("T")


async def topup(client: httpx.AsyncClient, actor: Actor, amount: int, *, key: str | None = None) -> dict[str, Any]:
    response = await client.post(f"{V1}/wallet/topups", json={"amount": amount},
                                 headers={**actor.headers, "Idempotency-Key": key or uuid.uuid4().hex})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def pay_path(payment: dict[str, Any]) -> str:
    """The pay page of a payment, as a path on the test client (checkout_url is absolute)."""
    return httpx.URL(payment["checkout_url"]).path


async def pay(client: httpx.AsyncClient, payment: dict[str, Any], card: str = "4242424242424242", *,
              action: str = "approve") -> httpx.Response:
    page = await client.get(pay_path(payment))
    assert page.status_code == 200, page.text
    return await client.post(pay_path(payment), data={"card_number": card, "action": action})


def sandbox(runtime: Runtime) -> SandboxProvider:
    provider = runtime.payments.providers["sandbox"]
    assert isinstance(provider, SandboxProvider)
    return provider


async def delivered(runtime: Runtime) -> None:
    """Every webhook the sandbox scheduled has been delivered (or dropped)."""
    await runtime.payments.drain()


async def read_payment(client: httpx.AsyncClient, actor: Actor, payment_id: str) -> dict[str, Any]:
    response = await client.get(f"{V1}/payments/{payment_id}", headers=actor.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def balance(client: httpx.AsyncClient, actor: Actor) -> int:
    response = await client.get(f"{V1}/wallet", headers=actor.headers)
    assert response.status_code == 200, response.text
    return int(response.json()["balance"]["amount"])


async def eventually(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], *, timeout: float = 15.0) -> T:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if done(value) or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.05)


async def credited_balance(client: httpx.AsyncClient, actor: Actor, expected: int) -> int:
    """The wallet's balance once the bus credited it (or after the timeout, whatever it is),
    read again a moment later so a second credit would show."""
    await eventually(lambda: balance(client, actor), lambda value: value >= expected)
    await asyncio.sleep(0.3)
    return await balance(client, actor)


async def credits_of(runtime: Runtime, payment_id: str) -> int:
    """How many ledger transactions credited this payment (the wallet's reference)."""
    async with runtime.db.read_session() as session:
        return int(await session.scalar(select(func.count()).select_from(LedgerTransaction).where(
            LedgerTransaction.reference == f"payment:{payment_id}")) or 0)


async def provider_ref(runtime: Runtime, payment_id: str) -> str:
    from mercato.models import Payment

    async with runtime.db.read_session() as session:
        found = await session.get(Payment, uuid.UUID(payment_id))
        assert found is not None and found.provider_ref
        return found.provider_ref


def sandbox_event(ref: str, payment_id: str, status: str, *, amount: int = 1000, event_id: str | None = None) -> bytes:
    return json.dumps({"id": event_id or f"evt_{uuid.uuid4().hex}", "type": f"payment.{status}",
                       "created": int(time.time()),
                       "data": {"provider_ref": ref, "merchant_payment_id": payment_id, "amount": amount,
                                "currency": "USD", "status": status, "reason": None}}).encode()


def signed(runtime: Runtime, body: bytes, *, timestamp: int | None = None,
           secret: str | None = None) -> dict[str, str]:
    return sign(secret or sandbox(runtime).secret, body, timestamp=timestamp)


async def post_webhook(client: httpx.AsyncClient, body: bytes, headers: dict[str, str],
                       provider: str = "sandbox") -> httpx.Response:
    return await client.post(f"{V1}/payments/webhooks/{provider}", content=body,
                             headers={"Content-Type": "application/json", **headers})
