"""The pages of what a person owns, in-process (httpx): the library (download, licence,
install on an instance), instances (register with the agent command shown once, the
operations, the task's progress box) and notifications (unread count, open marks read).
Effects are checked through the API or the database."""

from __future__ import annotations

import re
import uuid

import httpx
from sqlalchemy import select

from mercato.app.runtime import Runtime
from mercato.models import Entitlement, Notification
from mercato.notifications import service as notifications
from tests.catalog.support import Shop
from tests.installs.support import LINUX, Agent, published
from tests.support.actors import Actors
from tests.support.orders import until
from tests.support.pages import add, form_of, signed_in

V1 = "/api/v1"
FREE = [{"delivery": "digital", "price": {"amount": 0, "currency": "USD"}}]


async def test_a_free_listing_got_through_checkout_is_in_the_library_and_downloads(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime) -> None:
    shop = await Shop.open(client, actors)
    listing = await shop.published(offers=FREE, name="Free Notes")
    buyer = await signed_in(client, actors)
    await add(client, listing)
    checkout = await client.get("/checkout")
    assert "Get it" in checkout.text and "Nothing to pay." in checkout.text
    placed = await client.post("/checkout", data=await form_of(client, "/checkout"))
    assert placed.status_code == 303, placed.text
    await until(runtime, placed.headers["location"].removeprefix("/orders/"), "completed")
    page = await client.get("/library")
    assert "Free Notes" in page.text and f'/library/{listing["id"]}/download' in page.text
    download = await client.get(f"/library/{listing['id']}/download")
    assert download.status_code == 200 and download.content[:2] == b"\x1f\x8b"  # a .tar.gz
    assert "attachment" in download.headers["content-disposition"]
    licence = await client.get(f"/library/{listing['id']}/licence")
    assert licence.status_code == 200 and licence.json()["licence"]["listing_slug"] == listing["slug"]
    async with runtime.db.read_session() as session:
        entitlement = await session.scalar(select(Entitlement).where(Entitlement.user_id == uuid.UUID(buyer.id)))
    assert entitlement is not None and entitlement.download_count == 1


async def test_get_for_free_places_the_free_order_in_one_click_once(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime) -> None:
    shop = await Shop.open(client, actors)
    listing = await shop.published(offers=FREE, name="One Click Notes")
    path = f"/listings/{listing['slug']}"
    # signed out: to sign in, and back to the listing
    anonymous = await client.post(f"{path}/get", data={**await form_of(client, path), "listing_id": listing["id"]})
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=%2Flistings%2F" + listing["slug"]
    buyer = await signed_in(client, actors)
    page = await client.get(path)
    assert f'action="{path}/get"' in page.text
    fields = {**await form_of(client, path), "listing_id": listing["id"]}
    first, second = (await client.post(f"{path}/get", data=fields), await client.post(f"{path}/get", data=fields))
    assert first.status_code == second.status_code == 303, first.text
    assert first.headers["location"] == second.headers["location"]  # a double click: one order
    assert re.fullmatch(r"/orders/[0-9a-f-]{36}", first.headers["location"])
    await until(runtime, first.headers["location"].removeprefix("/orders/"), "completed")
    order_page = (await client.get(first.headers["location"])).text
    assert "Complete" in order_page and "Request a refund" not in order_page  # nothing to give back
    assert 'id="refunds"' not in order_page
    mine = (await client.get(f"{V1}/orders", headers=buyer.headers)).json()["items"]
    assert len(mine) == 1 and mine[0]["lines"][0]["listing_id"] == listing["id"]
    assert "One Click Notes" in (await client.get("/library")).text
    # owned already: a new click lands in the library, no second order
    again = await client.post(f"{path}/get", data={**await form_of(client, path), "listing_id": listing["id"]})
    assert again.status_code == 303 and again.headers["location"] == "/library"
    assert len((await client.get(f"{V1}/orders", headers=buyer.headers)).json()["items"]) == 1


async def test_get_for_free_refuses_a_paid_listing(client: httpx.AsyncClient, actors: Actors) -> None:
    shop = await Shop.open(client, actors)
    paid = await shop.published(offers=[{"delivery": "digital", "price": {"amount": 900, "currency": "USD"}}])
    buyer = await signed_in(client, actors)
    path = f"/listings/{paid['slug']}"
    refused = await client.post(f"{path}/get", data={**await form_of(client, path), "listing_id": paid["id"],
                                                     "idempotency_key": uuid.uuid4().hex})
    assert refused.status_code == 422 and refused.headers["content-type"].startswith("text/html")
    assert (await client.get(f"{V1}/orders", headers=buyer.headers)).json()["items"] == []


async def test_a_paid_listing_not_owned_does_not_download(client: httpx.AsyncClient, actors: Actors) -> None:
    shop = await Shop.open(client, actors)
    listing = await shop.published(offers=[{"delivery": "digital", "price": {"amount": 900, "currency": "USD"}}])
    await signed_in(client, actors)
    refused = await client.get(f"/library/{listing['id']}/download")
    assert refused.status_code in (403, 404) and refused.headers["content-type"].startswith("text/html")
    assert (await client.get(f"/library/{listing['id']}/licence")).status_code == 404


async def test_registering_an_instance_shows_its_token_once_with_the_agent_command(
        client: httpx.AsyncClient, actors: Actors) -> None:
    owner = await signed_in(client, actors)
    fields = await form_of(client, "/instances")
    blank = await client.post("/instances", data={**fields, "name": "  "})
    assert blank.status_code == 422 and 'id="e-name"' in blank.text
    created = await client.post("/instances", data={**fields, "name": "Living-room PC"})
    assert created.status_code == 200
    token = re.search(r'id="instance-token">(mci_[^<]+)<', created.text)
    assert token, created.text
    assert f"mercato agent --server http://mercato.test --token {token.group(1)} --root ~/mercato-apps" in created.text
    listed = (await client.get(f"{V1}/instances", headers=owner.headers)).json()["items"]
    assert [i["name"] for i in listed] == ["Living-room PC"]
    heartbeat = await client.post(f"{V1}/agent/heartbeat", headers={"Authorization": f"Bearer {token.group(1)}"},
                                  json={**LINUX, "inventory": []})
    assert heartbeat.status_code == 200  # the token shown is the instance's
    again = await client.get("/instances")
    assert token.group(1) not in again.text and "Living-room PC" in again.text


async def test_install_from_the_library_and_operate_from_the_instance_page(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime) -> None:
    shop = await Shop.open(client, actors)
    listing = await published(shop, offers=FREE, name="Hello Notes")
    owner = await signed_in(client, actors)
    created = await client.post("/instances", data={**await form_of(client, "/instances"), "name": "laptop"})
    token = re.search(r'id="instance-token">(mci_[^<]+)<', created.text)
    assert token
    instance_id = (await client.get(f"{V1}/instances", headers=owner.headers)).json()["items"][0]["id"]
    agent = Agent(client, instance_id, token.group(1))
    assert (await agent.heartbeat()).status_code == 200
    await add(client, listing)
    placed = await client.post("/checkout", data=await form_of(client, "/checkout"))
    await until(runtime, placed.headers["location"].removeprefix("/orders/"), "completed")
    library = await client.get("/library")
    assert 'name="instance_id"' in library.text
    fields = await form_of(client, "/library")
    started = await client.post(f"/library/{listing['id']}/install", data={**fields, "instance_id": instance_id})
    assert started.status_code == 303 and started.headers["location"].startswith(f"/instances/{instance_id}?task=")
    task_id = re.search(r"task=([0-9a-f-]+)", started.headers["location"]).group(1)  # type: ignore[union-attr]
    box = await client.get(f"/instances/{instance_id}/tasks/{task_id}")
    assert "hx-trigger" in box.text and 'data-state="queued"' in box.text
    [fetched] = await agent.fetch()
    assert (await agent.progress(fetched["id"], 40)).status_code == 200
    box = await client.get(f"/instances/{instance_id}/tasks/{task_id}")
    assert 'value="40"' in box.text
    assert (await agent.result(fetched["id"])).status_code == 200
    box = await client.get(f"/instances/{instance_id}/tasks/{task_id}")
    assert "hx-trigger" not in box.text and 'value="100"' in box.text and "done" in box.text
    page = await client.get(f"/instances/{instance_id}")
    installation_id = (await client.get(f"{V1}/tasks/{task_id}", headers=owner.headers)).json()["installation_id"]
    assert f"/installations/{installation_id}/stop" in page.text
    stopped = await client.post(f"/installations/{installation_id}/stop", data=await form_of(client, "/library"))
    assert stopped.status_code == 303
    [stop_task] = await agent.fetch()
    assert stop_task["kind"] == "stop"
    bad_clone = await client.post(f"/installations/{installation_id}/clone",
                                  data={**await form_of(client, "/library"), "name": "Not A Slug"})
    assert bad_clone.status_code == 422 and "lower-case" in bad_clone.text


async def test_another_persons_instance_is_a_404_page(client: httpx.AsyncClient, actors: Actors) -> None:
    other = await actors.create()
    response = await client.post(f"{V1}/instances", headers=other.headers, json={"name": "theirs"})
    await signed_in(client, actors)
    page = await client.get(f"/instances/{response.json()['id']}")
    assert page.status_code == 404 and "Page not found" in page.text


async def test_notifications_show_unread_and_open_their_page(client: httpx.AsyncClient, actors: Actors,
                                                            runtime: Runtime) -> None:
    reader = await signed_in(client, actors)
    async with runtime.db.transaction() as session:
        await notifications.notify(session, event_id=uuid.uuid4(), user_ids=[uuid.UUID(reader.id)],
                                   kind="order.completed", title="Your order is complete", link="/orders")
        await notifications.notify(session, event_id=uuid.uuid4(), user_ids=[uuid.UUID(reader.id)],
                                   kind="order.completed", title="Another one", link="/api/v1/orders")
    page = await client.get("/notifications")
    assert "2 unread" in page.text and "Your order is complete" in page.text
    assert 'aria-label="2 unread"' in page.text  # the header's counter
    async with runtime.db.read_session() as session:
        first = await session.scalar(select(Notification).where(Notification.title == "Your order is complete"))
    assert first is not None
    opened = await client.post(f"/notifications/{first.id}/read", data=await form_of(client, "/notifications"))
    assert opened.status_code == 303 and opened.headers["location"] == "/orders"
    assert "1 unread" in (await client.get("/notifications")).text
    cleared = await client.post("/notifications/read-all", data=await form_of(client, "/notifications"))
    assert cleared.status_code == 303
    api = (await client.get(f"{V1}/notifications", headers=reader.headers)).json()
    assert api["unread_count"] == 0
