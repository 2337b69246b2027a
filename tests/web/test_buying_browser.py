"""The buyer's journeys in a real browser (Debian's Chromium through Playwright), clicking
through the pages as a person would, then checking the effect through the API or the
database. Every page visited passes ``web.check()``: axe (no serious or critical
violation), no sideways scrolling at 390 px, no JavaScript error."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from mercato.app.runtime import Runtime
from mercato.models import Entitlement, Order, Refund
from tests.catalog.support import Shop
from tests.cli.servers import MERCATO, clean_env
from tests.installs.support import release
from tests.support.actors import DEFAULT_PASSWORD, Actors
from tests.web.browser import Web

V1 = "/api/v1"
FREE = [{"delivery": "digital", "price": {"amount": 0, "currency": "USD"}}]
SETTLE = 20_000  # ms: the saga and the sandbox's webhook run in the background


@pytest.fixture
async def api(web: Web) -> AsyncIterator[httpx.AsyncClient]:
    """The store's API on the same server the browser uses (to arrange and to check)."""
    async with httpx.AsyncClient(base_url=web.url, timeout=30) as client:
        yield client


@pytest.fixture
async def shop(api: httpx.AsyncClient, web: Web) -> Shop:
    return await Shop.open(api, Actors(api, web.runtime))


async def register(web: Web, email: str) -> None:
    await web.goto("/register")
    await web.check()
    await web.page.get_by_label("Email").fill(email)
    await web.page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    await web.page.get_by_role("button", name="Create account").click()
    await web.page.wait_for_url(lambda url: "/register" not in url)


async def user_id(runtime: Runtime, email: str) -> uuid.UUID:
    from mercato.models import User

    async with runtime.db.read_session() as session:
        found = await session.scalar(select(User.id).where(User.email == email))
    assert found is not None
    return found


async def test_a_new_visitor_registers_gets_a_free_listing_and_downloads_it(web: Web, shop: Shop) -> None:
    listing = await shop.published(offers=FREE, name="Free Notes", summary="Notes, free.")
    email = f"newcomer-{uuid.uuid4().hex[:8]}@example.org"
    await register(web, email)
    await web.goto(f"/listings/{listing['slug']}")
    await web.check()
    await web.page.get_by_role("button", name="Get for free").click()  # one click places the free order
    await web.page.wait_for_url(re.compile(r"/orders/[0-9a-f-]+$"))
    await web.page.locator('#order-status[data-status="completed"]').wait_for(timeout=SETTLE)
    await web.check()
    await web.page.get_by_role("link", name="Open your library").click()
    await web.page.wait_for_url("**/library")
    assert await web.page.get_by_role("heading", name="Free Notes").is_visible()
    await web.check()
    await web.screenshot("library")
    async with web.page.expect_download() as info:
        await web.page.get_by_role("link", name="Download").click()
    download = await info.value
    assert download.suggested_filename == f"{listing['slug']}-1.0.0.tar.gz"
    assert (await asyncio.to_thread(Path(await download.path()).read_bytes))[:2] == b"\x1f\x8b"
    async with web.runtime.db.read_session() as session:
        entitlement = await session.scalar(select(Entitlement).where(
            Entitlement.user_id == await user_id(web.runtime, email)))
    assert entitlement is not None and entitlement.download_count == 1 and entitlement.source in ("free", "purchase")


async def test_a_buyer_tops_up_buys_paid_and_physical_with_a_coupon_and_asks_a_refund(
        web: Web, shop: Shop, api: httpx.AsyncClient) -> None:
    paid = await shop.published(name="Pro Editor", offers=[
        {"delivery": "digital", "price": {"amount": 3000, "currency": "USD"}}])
    boxed = await shop.published(name="Boxed Edition", offers=[
        {"delivery": "physical", "price": {"amount": 1500, "currency": "USD"}, "stock": 5}])
    coupon = await api.post(f"{V1}/coupons", headers=shop.developer.headers, json={
        "code": "WELCOME10", "kind": "percent", "value": 10, "scope": "publisher", "publisher": shop.publisher})
    assert coupon.status_code == 201, coupon.text
    email = f"buyer-{uuid.uuid4().hex[:8]}@example.org"
    await register(web, email)
    buyer = await user_id(web.runtime, email)

    # top up 60.00 through the sandbox pay page, and back to the wallet
    await web.goto("/wallet")
    await web.check()
    await web.page.get_by_label("Top up (USD)").fill("60")
    await web.page.get_by_role("button", name="Top up").click()
    await web.page.wait_for_url(re.compile(r"/sandbox/pay/"))
    await web.check()
    await web.page.get_by_label("Card number").fill("4242 4242 4242 4242")
    await web.page.get_by_role("button", name="Approve").click()
    await web.page.get_by_role("link", name="Back to the store").click()
    await web.page.locator('#payment-result[data-status="succeeded"]').wait_for(timeout=SETTLE)
    assert "60.00 USD" in await web.page.locator("#wallet-balance").inner_text()
    await web.check()

    # a paid and a physical item (two copies) in one cart
    await web.goto(f"/listings/{paid['slug']}")
    await web.page.get_by_role("button", name="Add to cart").click()
    await web.page.wait_for_url("**/cart")
    await web.goto(f"/listings/{boxed['slug']}")
    await web.page.get_by_label("Quantity").fill("2")
    await web.page.get_by_role("button", name="Add to cart").click()
    await web.page.wait_for_url("**/cart")
    assert "60.00 USD" in await web.page.locator("#cart-subtotal").inner_text()
    await web.check()
    await web.page.get_by_role("link", name="Check out").click()
    await web.page.wait_for_url("**/checkout")
    await web.page.get_by_label("Coupon code").fill("welcome10")
    await web.page.get_by_role("button", name="Apply coupon").click()
    await web.page.wait_for_url(re.compile(r"/checkout\?coupon="))
    assert "54.00 USD" in await web.page.locator("#checkout-total").inner_text()
    await web.page.get_by_label("Full name").fill("Ada Buyer")
    await web.page.get_by_label("Address", exact=True).fill("1 Main Street")
    await web.page.get_by_label("Postal code").fill("10115")
    await web.page.get_by_label("City").fill("Berlin")
    await web.page.get_by_label("Country code").fill("DE")
    await web.check()
    await web.screenshot("checkout")
    await web.page.get_by_role("button", name=re.compile("Place order")).click()
    await web.page.wait_for_url(re.compile(r"/orders/[0-9a-f-]+$"))
    order_id = web.page.url.rsplit("/", 1)[1]
    await web.page.locator('#order-status[data-status="awaiting_shipment"]').wait_for(timeout=SETTLE)

    # the publisher ships and delivers; the buyer's page follows by itself
    for step, body in (("ship", {"carrier": "DHL", "tracking_number": "JD0001"}), ("deliver", None)):
        answer = await api.post(f"{V1}/orders/{order_id}/{step}", headers=shop.developer.headers, json=body)
        assert answer.status_code == 200, answer.text
    await web.page.locator('#order-status[data-status="completed"]').wait_for(timeout=SETTLE)
    await web.check()
    await web.screenshot("order")
    async with web.runtime.db.read_session() as session:
        order = await session.get(Order, uuid.UUID(order_id))
    assert order is not None and (order.total, order.discount, order.coupon_code) == (5400, 600, "WELCOME10")
    assert order.user_id == buyer and order.shipping_address["city"] == "Berlin"

    # the licence document from the library
    await web.goto("/library")
    item = web.page.locator(f"#item-{paid['slug']}")
    async with web.page.expect_download() as info:
        await item.get_by_role("link", name="Licence document").click()
    licence = json.loads(await asyncio.to_thread(Path(await (await info.value).path()).read_text))
    assert licence["licence"]["listing_slug"] == paid["slug"] and licence["signature"]
    await web.check()

    # a refund
    await web.goto(f"/orders/{order_id}")
    await web.page.get_by_label("Why do you want a refund?").fill("The box arrived damaged.")
    await web.page.get_by_role("button", name=re.compile("Request a refund")).click()
    await web.page.wait_for_url(re.compile(r"/orders/[0-9a-f-]+#refunds$"))
    assert await web.page.locator(".refund").count() == 1
    await web.check()
    async with web.runtime.db.read_session() as session:
        refunds = list(await session.scalars(select(Refund).where(Refund.order_id == uuid.UUID(order_id))))
    assert [r.reason for r in refunds] == ["The box arrived damaged."]


async def test_a_double_clicked_buy_places_one_order(web: Web, shop: Shop) -> None:
    listing = await shop.published(name="Twice Clicked", offers=[
        {"delivery": "digital", "price": {"amount": 800, "currency": "USD"}}])
    email = f"clicker-{uuid.uuid4().hex[:8]}@example.org"
    await register(web, email)
    buyer = await user_id(web.runtime, email)
    async with web.runtime.db.transaction() as session:
        from mercato.wallet import service as wallet

        await wallet.credit_payment(session, payment_id=uuid.uuid4(), user_id=buyer, provider="sandbox",
                                    amount=5000, currency="USD")
    await web.goto(f"/listings/{listing['slug']}")
    await web.page.get_by_role("button", name="Buy").click()
    await web.page.wait_for_url("**/checkout")
    # Both clicks must reach the server, as when a person double-clicks on a slow network: the
    # first answer is held back a moment, so the second click comes while the first still runs.
    answered: list[int] = []

    async def held_back(route: Any) -> None:
        if route.request.method != "POST":
            await route.continue_()
            return
        response = await route.fetch(max_redirects=0)
        answered.append(response.status)
        await asyncio.sleep(0.5)
        with contextlib.suppress(Exception):  # the browser dropped the first navigation for the second
            await route.fulfill(response=response)

    await web.page.route("**/checkout", held_back)
    button = web.page.get_by_role("button", name=re.compile("Place order"))
    await button.scroll_into_view_if_needed()
    box = await button.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    await web.page.mouse.click(x, y)
    await asyncio.sleep(0.1)
    await web.page.mouse.click(x, y)  # the mouse, not a locator: a locator would wait for the navigation
    # (the first navigation is aborted by the second, as in a real double click: wait for the page, not the URL)
    await web.page.locator('#order-status[data-status="completed"]').wait_for(timeout=SETTLE)
    assert re.search(r"/orders/[0-9a-f-]+$", web.page.url)
    await web.check()
    assert answered == [303, 303]  # the server got the form twice and answered both with the order
    async with web.runtime.db.read_session() as session:
        count = await session.scalar(select(func.count()).select_from(Order).where(Order.user_id == buyer))
    assert count == 1


def _agent(web: Web, command: str, root: Path) -> subprocess.Popen[bytes]:
    """The command the page showed, run for real (``mercato agent``), with this test's root."""
    words = command.split()
    assert words[:2] == ["mercato", "agent"], command
    server = words[words.index("--server") + 1]
    token = words[words.index("--token") + 1]
    assert server == web.url
    return subprocess.Popen([*MERCATO, "agent", "--server", server, "--token", token, "--root", str(root),
                             "--heartbeat", "1", "--poll-wait", "2"], env=clean_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


async def test_a_buyer_registers_an_instance_runs_the_agent_and_installs_from_the_library(
        web: Web, shop: Shop, tmp_path: Path) -> None:
    listing = await shop.listing(name="Hello Agent", offers=FREE)
    await release(shop, listing["slug"], "1.0.0")
    email = f"installer-{uuid.uuid4().hex[:8]}@example.org"
    await register(web, email)
    await web.goto("/instances")
    await web.check()
    await web.page.get_by_label("New instance name").fill("test box")
    await web.page.get_by_role("button", name="Register an instance").click()
    command = (await web.page.locator("#agent-command").inner_text()).strip()
    await web.check()
    agent = _agent(web, command, tmp_path / "apps")
    try:
        # get it (free), then install it from the library on the new instance
        await web.goto(f"/listings/{listing['slug']}")
        await web.page.get_by_role("button", name="Get for free").click()
        await web.page.locator('#order-status[data-status="completed"]').wait_for(timeout=SETTLE)
        for _ in range(100):  # the agent's first heartbeat tells the store its platform
            await web.goto("/instances")
            if "agent not seen yet" not in await web.page.content():
                break
            await asyncio.sleep(0.2)
        await web.goto("/library")
        await web.page.get_by_role("button", name="Install").click()
        await web.page.wait_for_url(re.compile(r"/instances/[0-9a-f-]+\?task="))
        # the progress box follows the agent; when the task ends the page shows the installation installed
        await web.page.locator(f'#installation-{listing["slug"]} .status-installed').wait_for(timeout=60_000)
        task = web.page.locator('.task[data-state="succeeded"]').first
        assert await task.locator("progress").get_attribute("value") == "100"
        await web.check()
        await web.screenshot("instance")
        assert (tmp_path / "apps" / listing["slug"] / "current").exists()
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(10)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
