"""The publisher console's webhooks, key pools and media, in-process: each change made on a
page is checked through the API, people outside the publisher are refused as the API refuses
them, and a refused input comes back beside its field with nothing changed."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from mercato.app.runtime import Runtime
from mercato.bus import repository as bus_repository
from mercato.bus.delivery import event_from_row
from mercato.config import Settings
from mercato.webhooks import service as webhook_service
from tests.catalog.support import V1, Shop
from tests.support.actors import Actors
from tests.support.pages import TOKEN, as_person, token_of
from tests.web.browser import Web, person, publisher_of, sign_in

RECEIVER = "http://127.0.0.1:9/hook"  # allowed below; nothing listens there


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"outbound_allowed_hosts": ["127.0.0.1"]})


@pytest.fixture
async def shop(client: httpx.AsyncClient, actors: Actors) -> Shop:
    return await Shop.open(client, actors)


async def test_an_owner_subscribes_sees_the_secret_once_tests_pauses_and_deletes(client: httpx.AsyncClient,
                                                                                  shop: Shop) -> None:
    as_person(client, shop.developer)
    page = f"/console/publisher/{shop.publisher}/webhooks"
    token = await token_of(client, page)
    created = await client.post(page, data={"csrf_token": token, "url": RECEIVER,
                                            "event_types": "order.paid\nlisting.published"})
    assert created.status_code == 201 and "whsec_" in created.text
    api = (await client.get(f"{V1}/webhooks", headers=shop.developer.headers,
                            params={"publisher": shop.publisher})).json()["items"]
    assert [(w["url"], w["event_types"]) for w in api] == [(RECEIVER, ["order.paid", "listing.published"])]
    webhook = api[0]["id"]
    listed = await client.get(page)
    assert RECEIVER in listed.text and "whsec_" not in listed.text  # the secret is shown once only

    tested = await client.post(f"{page}/{webhook}/test", data={"csrf_token": token})
    assert tested.status_code == 303
    deliveries = (await client.get(f"{V1}/webhooks/{webhook}/deliveries", headers=shop.developer.headers)).json()
    assert [d["event_type"] for d in deliveries["items"]] == ["webhook.test"]
    history = await client.get(tested.headers["location"])
    assert "webhook.test" in history.text and deliveries["items"][0]["id"] in history.text

    rotated = await client.post(f"{page}/{webhook}/rotate-secret", data={"csrf_token": token})
    assert rotated.status_code == 200 and "whsec_" in rotated.text
    assert (await client.get(f"{V1}/webhooks/{webhook}", headers=shop.developer.headers)
            ).json()["previous_secret_expires_at"] is not None
    assert "whsec_" not in (await client.get(f"{page}/{webhook}")).text

    paused = await client.post(f"{page}/{webhook}/active", data={"csrf_token": token, "active": "false"})
    assert paused.status_code == 303
    assert (await client.get(f"{V1}/webhooks/{webhook}", headers=shop.developer.headers)).json()["active"] is False
    deleted = await client.post(f"{page}/{webhook}/delete", data={"csrf_token": token})
    assert deleted.status_code == 303
    assert (await client.get(f"{V1}/webhooks/{webhook}", headers=shop.developer.headers)).status_code == 404


async def test_the_test_event_goes_to_that_webhook_only_through_the_api(client: httpx.AsyncClient, shop: Shop,
                                                                        runtime: Runtime) -> None:
    made = []
    for _ in range(2):
        response = await client.post(f"{V1}/webhooks", headers=shop.developer.headers,
                                     json={"url": RECEIVER, "event_types": ["*"], "publisher": shop.publisher})
        assert response.status_code == 201, response.text
        made.append(response.json()["id"])
    sent = await client.post(f"{V1}/webhooks/{made[0]}/test", headers=shop.developer.headers)
    assert sent.status_code == 202 and sent.json()["event_type"] == "webhook.test"
    other = (await client.get(f"{V1}/webhooks/{made[1]}/deliveries", headers=shop.developer.headers)).json()
    assert other["items"] == []
    async with runtime.db.transaction() as session:  # the fan-out (every event to every '*' webhook) skips it
        row = await bus_repository.event(session, uuid.UUID(sent.json()["event_id"]))
        assert row is not None and await webhook_service.fan_out(session, [event_from_row(row)]) == 0


async def test_refused_webhook_input_is_shown_beside_the_field_and_nothing_is_created(client: httpx.AsyncClient,
                                                                                      shop: Shop) -> None:
    as_person(client, shop.developer)
    page = f"/console/publisher/{shop.publisher}/webhooks"
    token = await token_of(client, page)
    unknown = await client.post(page, data={"csrf_token": token, "url": RECEIVER, "event_types": "order.payed"})
    assert unknown.status_code == 422 and 'id="e-event_types"' in unknown.text and "order.payed" in unknown.text
    assert f'value="{RECEIVER}"' in unknown.text
    private = await client.post(page, data={"csrf_token": token, "url": "http://169.254.169.254/latest",
                                            "event_types": "*"})
    assert private.status_code == 422 and 'id="e-url"' in private.text
    assert (await client.get(f"{V1}/webhooks", headers=shop.developer.headers)).json()["items"] == []


async def test_people_outside_the_publisher_cannot_see_or_touch_its_webhooks(client: httpx.AsyncClient,
                                                                            shop: Shop) -> None:
    mine = (await client.post(f"{V1}/webhooks", headers=shop.developer.headers,
                              json={"url": RECEIVER, "event_types": ["*"], "publisher": shop.publisher})).json()
    stranger = await shop.actors.create()  # a developer of no publisher: holds webhook:manage (own)
    await shop.actors.publisher(stranger)
    as_person(client, stranger)
    assert (await client.get(f"/console/publisher/{shop.publisher}/webhooks")).status_code == 403
    token = TOKEN.search((await client.get("/account")).text)
    assert token
    poked = await client.post(f"/console/publisher/{shop.publisher}/webhooks/{mine['id']}/delete",
                              data={"csrf_token": token.group(1)})
    assert poked.status_code == 403
    assert (await client.get(f"{V1}/webhooks/{mine['id']}", headers=shop.developer.headers)).status_code == 200
    as_person(client, shop.reviewer)  # no webhook:manage at all
    assert (await client.get(f"/console/publisher/{shop.publisher}/webhooks")).status_code == 403


async def test_a_member_sees_the_key_pool_and_uploads_keys(client: httpx.AsyncClient, shop: Shop) -> None:
    listing = await shop.listing()
    as_person(client, shop.developer)
    page = f"/console/publisher/{shop.publisher}/listings/{listing['id']}"
    before = await client.get(page)
    assert "The pool holds 0 keys" in before.text
    token = TOKEN.search(before.text).group(1)  # type: ignore[union-attr]
    uploaded = await client.post(f"{page}/keys", data={"csrf_token": token, "keys": "AAA-1\nBBB-2\n\nAAA-1\n"})
    assert uploaded.status_code == 303 and "keys_added=2" in uploaded.headers["location"]
    pool = (await client.get(f"{V1}/listings/{listing['id']}/keys", headers=shop.developer.headers)).json()
    assert (pool["total"], pool["free"]) == (2, 2)
    after = await client.get(uploaded.headers["location"])
    assert "The pool holds 2 keys: 2 remaining" in after.text and "1 skipped" in after.text

    bad = await client.post(f"{page}/keys", data={"csrf_token": token, "keys": "CCC-3\n" + "x" * 501})
    assert bad.status_code == 422 and 'id="e-keys"' in bad.text and "longer than 500" in bad.text
    assert "CCC-3" in bad.text  # what was typed stays in the field
    pool = (await client.get(f"{V1}/listings/{listing['id']}/keys", headers=shop.developer.headers)).json()
    assert pool["total"] == 2

    stranger = await shop.actors.create()
    as_person(client, stranger)
    token = TOKEN.search((await client.get("/account")).text).group(1)  # type: ignore[union-attr]
    refused = await client.post(f"{page}/keys", data={"csrf_token": token, "keys": "EVIL-1"})
    assert refused.status_code == 403
    pool = (await client.get(f"{V1}/listings/{listing['id']}/keys", headers=shop.developer.headers)).json()
    assert pool["total"] == 2


async def test_media_urls_are_edited_and_validated_as_the_api_does(client: httpx.AsyncClient, shop: Shop) -> None:
    listing = await shop.listing()
    as_person(client, shop.developer)
    page = f"/console/publisher/{shop.publisher}/listings/{listing['id']}"
    token = await token_of(client, page)
    form = {"csrf_token": token, "name": "Test Listing", "summary": "Does things.", "description": "",
            "category": "", "tags": "", "homepage": "", "license": "", "digital_price": "0", "physical_price": "",
            "stock": "", "icon_url": "https://img.example.org/icon.png",
            "screenshots": "https://img.example.org/1.png\nhttps://img.example.org/2.png"}
    bad = await client.post(page, data=form | {"screenshots": "https://img.example.org/1.png\nnot a url"})
    assert bad.status_code == 422 and 'id="e-screenshots"' in bad.text and "not a url" in bad.text
    unchanged = (await client.get(f"{V1}/listings/{listing['id']}", headers=shop.developer.headers)).json()
    assert unchanged["screenshots"] == [] and unchanged["icon_url"] is None
    saved = await client.post(page, data=form)
    assert saved.status_code == 303
    now = (await client.get(f"{V1}/listings/{listing['id']}", headers=shop.developer.headers)).json()
    assert now["icon_url"] == "https://img.example.org/icon.png"
    assert now["screenshots"] == ["https://img.example.org/1.png", "https://img.example.org/2.png"]


async def test_send_test_event_reaches_the_receiver_signed_and_shows_in_the_history(client: httpx.AsyncClient,
                                                                                     shop: Shop) -> None:
    received: list[tuple[bytes, bytes]] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        received.append((head, await reader.readexactly(length)))
        writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        as_person(client, shop.developer)
        page = f"/console/publisher/{shop.publisher}/webhooks"
        token = await token_of(client, page)
        created = await client.post(page, data={"csrf_token": token, "url": f"http://127.0.0.1:{port}/in",
                                                "event_types": "order.paid"})
        assert created.status_code == 201
        webhook = re.search(rf"{page}/([0-9a-f-]{{36}})", created.text).group(1)  # type: ignore[union-attr]
        tested = await client.post(f"{page}/{webhook}/test", data={"csrf_token": token})
        assert tested.status_code == 303
        for _ in range(100):  # the app's embedded bus runs the webhooks.send sweep every second
            if received:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the test event was not sent")
    finally:
        server.close()
        await server.wait_closed()
    head, body = received[0]
    assert b"webhook-signature: v1," in head.lower()
    event = json.loads(body)
    assert event["type"] == "webhook.test" and event["data"]["webhook_id"] == webhook
    for _ in range(50):
        history = (await client.get(f"{V1}/webhooks/{webhook}/deliveries", headers=shop.developer.headers)).json()
        if history["items"][0]["state"] == "succeeded":
            break
        await asyncio.sleep(0.1)
    assert history["items"][0]["last_status_code"] == 204
    shown = await client.get(f"{page}/{webhook}")
    assert "succeeded" in shown.text and ">204<" in shown.text


# --- in a real browser ------------------------------------------------------------------------------

@pytest.fixture
async def http(web: Web) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=web.url, timeout=30) as client:
        yield client


async def test_an_owner_manages_webhooks_and_a_key_pool_in_the_browser(web: Web, http: httpx.AsyncClient) -> None:
    admin = await person(web, http, "marketplace_admin")
    owner = await person(web, http)
    slug = await publisher_of(http, admin, owner)
    listing = await http.post(f"{V1}/listings", headers=admin.headers, json={
        "publisher": slug, "slug": f"keys-{slug[-8:]}", "name": "Keyed App", "kind": "app", "summary": "Keys."})
    assert listing.status_code == 201, listing.text
    await sign_in(web, owner)
    page = web.page

    await web.goto(f"/console/publisher/{slug}/webhooks")
    await web.check()
    await page.get_by_label("URL (http or https, a public host)").fill(RECEIVER)
    await page.get_by_label("Event types, one a line (* for every type)").fill("order.paid")
    async with page.expect_navigation():
        await page.get_by_role("button", name="Subscribe").click()
    assert "whsec_" in await page.locator("code.secret").inner_text()
    await web.check()
    async with page.expect_navigation():
        await page.get_by_role("link", name="Open the webhook").click()
    async with page.expect_navigation():
        await page.get_by_role("button", name="Send test event").click()
    assert "is queued" in await page.locator("[role=status]").inner_text()
    assert "webhook.test" in await page.locator("table").inner_text()
    await web.check()
    hooks = (await http.get(f"{V1}/webhooks", headers=owner.headers, params={"publisher": slug})).json()["items"]
    assert [h["url"] for h in hooks] == [RECEIVER]
    sent = (await http.get(f"{V1}/webhooks/{hooks[0]['id']}/deliveries", headers=owner.headers)).json()["items"]
    assert [d["event_type"] for d in sent] == ["webhook.test"]

    await web.goto(f"/console/publisher/{slug}/listings/{listing.json()['id']}")
    await page.get_by_label("Keys to add, one a line (at most 1000)").fill("KEY-ONE\nKEY-TWO")
    async with page.expect_navigation():
        await page.get_by_role("button", name="Add the keys").click()
    assert "2 remaining" in await page.locator("#keys").inner_text()
    await web.check()
    pool = (await http.get(f"{V1}/listings/{listing.json()['id']}/keys", headers=owner.headers)).json()
    assert (pool["total"], pool["free"]) == (2, 2)
