"""The buyer's pages in-process (httpx): cart, checkout with its page-made Idempotency-Key,
orders (status, pay a shortfall, cancel, refund, receipt), wallet top-up and the sandbox
pay page in the layout. Every effect is checked through the API or the database."""

from __future__ import annotations

import asyncio
import re
import uuid

import httpx
import pytest
from sqlalchemy import func, select

from mercato.app.runtime import Runtime
from mercato.models import Order
from tests.support.actors import Actor, Actors
from tests.support.orders import ADDRESS, Seller, fund, until
from tests.support.pages import add, form_of, signed_in

V1 = "/api/v1"
async def orders_of(runtime: Runtime, buyer: Actor) -> list[Order]:
    async with runtime.db.read_session() as session:
        return list(await session.scalars(select(Order).where(Order.user_id == uuid.UUID(buyer.id))))


async def test_the_cart_adds_changes_and_removes_lines(client: httpx.AsyncClient, actors: Actors,
                                                       runtime: Runtime) -> None:
    seller = await Seller.open(client, actors, runtime)
    app_listing = await seller.listing(digital=1500, name="Paid App")
    boxed = await seller.listing(physical=2500, stock=5, name="Boxed Game")
    assert (await add(client, app_listing)).status_code == 303
    assert (await add(client, boxed, "physical", 2)).status_code == 303
    assert (await add(client, app_listing)).status_code == 303  # a digital item stays one
    page = await client.get("/cart")
    assert "Paid App" in page.text and "Boxed Game" in page.text
    assert "65.00 USD" in page.text  # 15 + 2 × 25
    fields = await form_of(client, "/cart")
    changed = await client.post("/cart/update", data={**fields, "quantity-1": "3"})
    assert changed.status_code == 303
    assert "90.00 USD" in (await client.get("/cart")).text
    refused = await client.post("/cart/update", data={**fields, "quantity-1": "lots"})
    assert refused.status_code == 422 and 'value="lots"' in refused.text and "whole number" in refused.text
    removed = await client.post("/cart/update", data={**fields, "remove": "0"})
    assert removed.status_code == 303
    page = await client.get("/cart")
    assert "Paid App" not in page.text and "75.00 USD" in page.text


async def test_a_listing_not_on_sale_that_way_is_not_added(client: httpx.AsyncClient, actors: Actors,
                                                           runtime: Runtime) -> None:
    seller = await Seller.open(client, actors, runtime)
    digital_only = await seller.listing(digital=500)
    refused = await add(client, digital_only, "physical")
    assert refused.status_code == 422 and "not sold as a physical item" in refused.text
    assert "mercato_cart" not in refused.headers.get("set-cookie", "")


async def test_checkout_needs_a_session_and_comes_back(client: httpx.AsyncClient, actors: Actors,
                                                       runtime: Runtime) -> None:
    seller = await Seller.open(client, actors, runtime)
    await add(client, await seller.listing(digital=500))
    answer = await client.get("/checkout")
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=%2Fcheckout"


async def test_checkout_pays_from_the_wallet_with_a_coupon_and_a_shipping_address(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime) -> None:
    seller = await Seller.open(client, actors, runtime)
    paid = await seller.listing(digital=2000, name="Paid App")
    boxed = await seller.listing(physical=1000, stock=4, name="Boxed Game")
    coupon = await client.post(f"{V1}/coupons", headers=seller.developer.headers, json={
        "code": "WEB-TEN", "kind": "percent", "value": 10, "scope": "publisher", "publisher": seller.slug})
    assert coupon.status_code == 201, coupon.text
    buyer = await signed_in(client, actors)
    await fund(runtime, buyer, 10_000)
    await add(client, paid)
    await add(client, boxed, "physical", 2)
    preview = await client.get("/checkout", params={"coupon": "web-ten"})
    assert preview.status_code == 200 and "−4.00 USD" in preview.text and "36.00 USD" in preview.text
    fields = await form_of(client, "/checkout?coupon=web-ten")
    missing = await client.post("/checkout", data={**fields, "coupon": "web-ten", **ADDRESS, "city": ""})
    assert missing.status_code == 422 and 'id="e-city"' in missing.text and 'value="Ada Buyer"' in missing.text
    assert await orders_of(runtime, buyer) == []
    placed = await client.post("/checkout", data={**fields, "coupon": "web-ten", **ADDRESS})
    assert placed.status_code == 303, placed.text
    order_id = placed.headers["location"].removeprefix("/orders/")
    assert 'mercato_cart=""' in placed.headers["set-cookie"] or "Max-Age=0" in placed.headers["set-cookie"]
    assert await until(runtime, order_id, "awaiting_shipment") == "awaiting_shipment"
    api = (await client.get(f"{V1}/orders/{order_id}", headers=buyer.headers)).json()
    assert (api["total"]["amount"], api["discount"]["amount"], api["coupon_code"]) == (3600, 400, "WEB-TEN")
    assert api["shipping_address"]["city"] == "Berlin"
    page = await client.get(f"/orders/{order_id}")
    assert page.status_code == 200 and "Paid, waiting for shipment" in page.text and "36.00 USD" in page.text


async def test_the_same_checkout_form_sent_twice_places_one_order(client: httpx.AsyncClient, actors: Actors,
                                                                  runtime: Runtime) -> None:
    seller = await Seller.open(client, actors, runtime)
    buyer = await signed_in(client, actors)
    await fund(runtime, buyer, 5_000)
    await add(client, await seller.listing(digital=1200))
    fields = await form_of(client, "/checkout")
    first, second = await asyncio.gather(client.post("/checkout", data=fields),
                                         client.post("/checkout", data=fields))
    assert first.status_code == second.status_code == 303, (first.text, second.text)
    assert first.headers["location"] == second.headers["location"]
    # a click that leaves after the first answer emptied the cart gets that answer too, not the empty cart
    assert "mercato_cart" not in client.cookies
    late = await client.post("/checkout", data=fields)
    assert late.status_code == 303 and late.headers["location"] == first.headers["location"]
    assert len(await orders_of(runtime, buyer)) == 1


async def test_a_shortfall_goes_to_the_sandbox_pay_page_in_the_layout_and_back(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime) -> None:
    seller = await Seller.open(client, actors, runtime)
    buyer = await signed_in(client, actors)
    await fund(runtime, buyer, 300)
    await add(client, await seller.listing(digital=1000))
    placed = await client.post("/checkout", data=await form_of(client, "/checkout"))
    order_id = placed.headers["location"].removeprefix("/orders/")
    await until(runtime, order_id, "awaiting_payment")
    status = await client.get(f"/orders/{order_id}/status")
    assert 'data-status="awaiting_payment"' in status.text and "hx-trigger" in status.text
    paying = await client.post(f"/orders/{order_id}/pay", data=await form_of(client, f"/orders/{order_id}"))
    assert paying.status_code == 303 and paying.headers["location"].startswith("/sandbox/pay/")
    pay_page = await client.get(paying.headers["location"])
    assert pay_page.status_code == 200 and 'class="site-header"' in pay_page.text and "7.00 USD" in pay_page.text
    assert "<style>" not in pay_page.text and "unsafe-inline" not in pay_page.headers["content-security-policy"]
    paid = await client.post(paying.headers["location"], data={"action": "approve",
                                                               "card_number": "4242 4242 4242 4242"})
    assert paid.status_code == 200 and f'href="/orders/{order_id}"' in paid.text
    assert await until(runtime, order_id, "completed") == "completed"
    done = await client.get(f"/orders/{order_id}/status")
    assert "hx-trigger" not in done.text and "/receipt" in done.text
    receipt = await client.get(f"/orders/{order_id}/receipt")
    assert receipt.status_code == 200 and "receipt R-" in receipt.text and 'class="site-header"' in receipt.text
    api_receipt = await client.get(f"{V1}/orders/{order_id}/receipt", headers={**buyer.headers,
                                                                                "Accept": "text/html"})
    assert api_receipt.status_code == 200 and "receipt R-" in api_receipt.text
    assert "onclick" not in api_receipt.text and "<style>" not in api_receipt.text


async def test_a_refund_is_requested_from_the_order_page(client: httpx.AsyncClient, actors: Actors,
                                                         runtime: Runtime) -> None:
    seller = await Seller.open(client, actors, runtime)
    buyer = await signed_in(client, actors)
    await fund(runtime, buyer, 2_000)
    await add(client, await seller.listing(digital=1000))
    placed = await client.post("/checkout", data=await form_of(client, "/checkout"))
    order_id = placed.headers["location"].removeprefix("/orders/")
    await until(runtime, order_id, "completed")
    fields = await form_of(client, f"/orders/{order_id}")
    short = await client.post(f"/orders/{order_id}/refund", data={**fields, "reason": "no"})
    assert short.status_code == 422 and 'id="e-reason"' in short.text
    asked = await client.post(f"/orders/{order_id}/refund", data={**fields, "reason": "It does not start."})
    assert asked.status_code == 303
    refunds = (await client.get(f"{V1}/refunds", headers=buyer.headers, params={"order_id": order_id})).json()
    assert [r["reason"] for r in refunds["items"]] == ["It does not start."]
    again = await client.post(f"/orders/{order_id}/refund", data={**fields, "reason": "It does not start."})
    assert again.status_code == 303  # the same form again: the stored answer, no second refund
    refunds = (await client.get(f"{V1}/refunds", headers=buyer.headers, params={"order_id": order_id})).json()
    assert len(refunds["items"]) == 1


async def test_an_unpaid_order_is_canceled_from_its_page(client: httpx.AsyncClient, actors: Actors,
                                                         runtime: Runtime) -> None:
    seller = await Seller.open(client, actors, runtime)
    await signed_in(client, actors)
    await add(client, await seller.listing(digital=1000))
    placed = await client.post("/checkout", data=await form_of(client, "/checkout"))
    order_id = placed.headers["location"].removeprefix("/orders/")
    await until(runtime, order_id, "awaiting_payment")
    fields = await form_of(client, f"/orders/{order_id}")
    canceled = await client.post(f"/orders/{order_id}/cancel", data={"csrf_token": fields["csrf_token"]})
    assert canceled.status_code == 303
    assert await until(runtime, order_id, "canceled") == "canceled"
    listed = await client.get("/orders")
    assert order_id[:8].upper() in listed.text and "Canceled" in listed.text


async def test_another_buyers_order_is_a_404_page(client: httpx.AsyncClient, actors: Actors,
                                                  runtime: Runtime) -> None:
    seller = await Seller.open(client, actors, runtime)
    other = await actors.create()
    await fund(runtime, other, 1_000)
    response = await client.post(f"{V1}/orders", headers={**other.headers, "Idempotency-Key": uuid.uuid4().hex},
                                 json={"items": [{"listing_id": (await seller.listing(digital=100))["id"]}]})
    await signed_in(client, actors)
    page = await client.get(f"/orders/{response.json()['id']}")
    assert page.status_code == 404 and "Page not found" in page.text
    async with runtime.db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 1


async def test_the_wallet_tops_up_through_the_sandbox_pay_page(client: httpx.AsyncClient, actors: Actors,
                                                               runtime: Runtime) -> None:
    buyer = await signed_in(client, actors)
    fields = await form_of(client, "/wallet")
    bad = await client.post("/wallet/topup", data={**fields, "amount": "12.345"})
    assert bad.status_code == 422 and 'value="12.345"' in bad.text and 'id="e-amount"' in bad.text
    started = await client.post("/wallet/topup", data={**fields, "amount": "25.50"})
    assert started.status_code == 303 and started.headers["location"].startswith("/sandbox/pay/")
    paid = await client.post(started.headers["location"], data={"action": "approve",
                                                                "card_number": "4242424242424242"})
    back = re.search(r'href="(/wallet\?payment=[^"]+)"', paid.text)
    assert back, paid.text
    for _ in range(200):
        wallet = (await client.get(f"{V1}/wallet", headers=buyer.headers)).json()
        if wallet["balance"]["amount"] == 2550:
            break
        await asyncio.sleep(0.05)
    assert wallet["balance"]["amount"] == 2550
    page = await client.get(back.group(1).replace("&amp;", "&"))
    assert page.status_code == 200 and "25.50 USD" in page.text and 'data-status="succeeded"' in page.text
    assert "Refresh" not in page.headers


async def test_a_topup_not_yet_in_the_wallet_is_shown_on_its_way_and_the_page_looks_again(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """The payment succeeds first and the wallet's credit follows (a reaction): the page the
    payer returns to never shows "it is in your wallet" beside the old balance."""
    from mercato.wallet import service as wallet_service

    buyer = await signed_in(client, actors)
    fields = await form_of(client, "/wallet")
    started = await client.post("/wallet/topup", data={**fields, "amount": "10"})
    paid = await client.post(started.headers["location"], data={"action": "approve",
                                                                "card_number": "4242424242424242"})
    found = re.search(r'href="(/wallet\?payment=[^"]+)"', paid.text)
    assert found, paid.text
    back = found.group(1).replace("&amp;", "&")

    async def not_yet(session: object, payment_id: uuid.UUID) -> bool:
        return False

    payment_id = uuid.UUID(back.rsplit("=", 1)[1])
    for _ in range(200):  # the provider's confirmation (the sandbox's webhook) comes shortly after
        status = (await client.get(f"{V1}/payments/{payment_id}", headers=buyer.headers)).json()["status"]
        if status == "succeeded":
            break
        await asyncio.sleep(0.05)
    assert status == "succeeded"
    monkeypatch.setattr(wallet_service, "payment_was_credited", not_yet)
    waiting = await client.get(back)
    assert 'data-status="crediting"' in waiting.text and "on its way into your wallet" in waiting.text
    assert waiting.headers["Refresh"] == "2"
    monkeypatch.undo()
    for _ in range(200):  # the credit is posted by the bus shortly after
        async with runtime.db.read_session() as session:
            if await wallet_service.payment_was_credited(session, payment_id):
                break
        await asyncio.sleep(0.05)
    arrived = await client.get(back)
    assert 'data-status="succeeded"' in arrived.text and "10.00 USD" in arrived.text
