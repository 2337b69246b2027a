"""M10: receipts of completed orders and succeeded payments, as JSON and printable HTML."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from mercato.app.runtime import Runtime
from mercato.kit.clock import utcnow
from mercato.models import Order, Payment
from tests.library.support import V1, Store
from tests.support.refunds import completed_order


@pytest.fixture
async def store(client: httpx.AsyncClient, actors, runtime: Runtime) -> Store:  # type: ignore[no-untyped-def]
    return await Store.open(client, actors, runtime)


async def test_an_order_receipt_lists_what_was_paid_as_json(client: httpx.AsyncClient, runtime: Runtime,
                                                           store: Store, actors) -> None:  # type: ignore[no-untyped-def]
    first, second = await store.listing(price=1999, name="Hello Notes"), await store.listing(price=500, name="Atlas")
    buyer = await actors.create()
    bought = await completed_order(runtime, buyer, [(first, 1999, 1, "digital"), (second, 500, 2, "physical")])
    response = await client.get(f"{V1}/orders/{bought.order_id}/receipt", headers=buyer.headers)
    assert response.status_code == 200, response.text
    receipt = response.json()
    assert receipt["kind"] == "order" and receipt["number"].startswith("R-")
    assert [(line["description"], line["quantity"], line["total"]["amount"]) for line in receipt["lines"]] == [
        ("Hello Notes", 1, 1999), ("Atlas (physical copy)", 2, 1000)]
    assert receipt["total"] == {"amount": 2999, "currency": "USD"} and receipt["buyer_email"] == buyer.email
    assert receipt["refunded"]["amount"] == 0


async def test_the_printable_receipt_escapes_what_publishers_wrote(client: httpx.AsyncClient, runtime: Runtime,
                                                                   store: Store, actors) -> None:  # type: ignore[no-untyped-def]
    listing = await store.listing(price=1234, name="<b>Bold</b> & Co")
    buyer = await actors.create()
    bought = await completed_order(runtime, buyer, [(listing, 1234, 1, "digital")])
    page = await client.get(f"{V1}/orders/{bought.order_id}/receipt",
                            headers={**buyer.headers, "Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; Co" in page.text and "<b>Bold</b>" not in page.text
    assert "12.34 USD" in page.text and f"R-{uuid.UUID(bought.order_id).hex[:12].upper()}" in page.text


async def test_refunds_show_on_the_receipt(client: httpx.AsyncClient, runtime: Runtime, store: Store,
                                           actors) -> None:  # type: ignore[no-untyped-def]
    listing = await store.listing(price=800)
    buyer = await actors.create()
    bought = await completed_order(runtime, buyer, [(listing, 800, 1, "digital")])
    refund = await client.post(f"{V1}/orders/{bought.order_id}/refunds", json={"reason": "Did not start"},
                               headers={**buyer.headers, "Idempotency-Key": "receipt-refund"})
    assert refund.status_code == 201, refund.text
    receipt = (await client.get(f"{V1}/orders/{bought.order_id}/receipt", headers=buyer.headers)).json()
    assert receipt["refunded"]["amount"] == 800 and receipt["lines"][0]["refunded"]["amount"] == 800


async def test_nobody_else_reads_a_receipt_and_unfinished_orders_have_none(
        client: httpx.AsyncClient, runtime: Runtime, store: Store, actors) -> None:  # type: ignore[no-untyped-def]
    listing = await store.listing(price=300)
    buyer, stranger = await actors.create(), await actors.create()
    bought = await completed_order(runtime, buyer, [(listing, 300, 1, "digital")])
    assert (await client.get(f"{V1}/orders/{bought.order_id}/receipt", headers=stranger.headers)).status_code == 404
    assert (await client.get(f"{V1}/orders/{uuid.uuid4()}/receipt", headers=buyer.headers)).status_code == 404
    admin_view = await client.get(f"{V1}/orders/{bought.order_id}/receipt", headers=store.admin.headers)
    assert admin_view.status_code == 200
    async with runtime.db.transaction() as session:
        await session.execute(update(Order).where(Order.id == uuid.UUID(bought.order_id))
                              .values(status="awaiting_shipment", completed_at=None))
    pending = await client.get(f"{V1}/orders/{bought.order_id}/receipt", headers=buyer.headers)
    assert pending.status_code == 409 and pending.json()["code"] == "receipt_not_ready"


async def test_a_succeeded_payment_has_a_receipt(client: httpx.AsyncClient, runtime: Runtime, actors) -> None:  # type: ignore[no-untyped-def]
    payer = await actors.create()
    now = utcnow()
    payment = Payment(id=uuid.uuid4(), user_id=uuid.UUID(payer.id), provider="sandbox", provider_ref="ref-1",
                      purpose="topup", amount=2500, currency="USD", status="succeeded",
                      expires_at=now + timedelta(hours=1), succeeded_at=now, created_at=now, updated_at=now)
    async with runtime.db.transaction() as session:
        session.add(payment)
    response = await client.get(f"{V1}/payments/{payment.id}/receipt", headers=payer.headers)
    assert response.status_code == 200, response.text
    assert response.json()["lines"][0]["description"] == "Wallet top-up"
    assert response.json()["total"]["amount"] == 2500 and response.json()["paid_with"] == "sandbox"
    other = await actors.create()
    assert (await client.get(f"{V1}/payments/{payment.id}/receipt", headers=other.headers)).status_code == 404
