"""The account page and the layout's header in-process: the publisher application, the unread
notifications count, and htmx's CSRF header."""

from __future__ import annotations

import uuid

import httpx

from mercato.notifications import service as notifications
from mercato.runtime import Runtime
from tests.conftest import Actors
from tests.web.test_foundation import TOKEN, sign_in

V1 = "/api/v1"


async def test_a_user_applies_to_become_a_publisher_from_the_account_page(
        client: httpx.AsyncClient, actors: Actors) -> None:
    user = await actors.create()
    await sign_in(client, user.email)
    token = TOKEN.search((await client.get("/account")).text).group(1)  # type: ignore[union-attr]
    bad = await client.post("/account/publisher-application", data={
        "name": "Acme Tools", "slug": "Not A Slug!", "description": "", "website": "", "csrf_token": token})
    assert bad.status_code == 422 and 'id="e-slug"' in bad.text and 'value="Acme Tools"' in bad.text
    slug = f"acme-{uuid.uuid4().hex[:6]}"
    sent = await client.post("/account/publisher-application", data={
        "name": "Acme Tools", "slug": slug, "description": "Tools.", "website": "https://acme.example",
        "csrf_token": token})
    assert sent.status_code == 303
    mine = (await client.get(f"{V1}/me/publisher-applications", headers=user.headers)).json()
    assert [(a["slug"], a["status"]) for a in mine] == [(slug, "pending")]
    page = await client.get("/account")
    assert f"({slug}): pending" in page.text and 'action="/account/publisher-application"' not in page.text


async def test_the_header_shows_the_unread_notifications_count(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime) -> None:
    user = await actors.create()
    await sign_in(client, user.email)
    assert 'class="badge"' not in (await client.get("/")).text
    async with runtime.db.transaction() as session:
        for n in range(3):
            await notifications.notify(session, event_id=uuid.uuid4(), user_ids=[uuid.UUID(user.id)], kind="test",
                                       title=f"Hello {n}")
    page = await client.get("/")
    assert 'aria-label="3 unread">3</span>' in page.text


async def test_htmx_requests_pass_the_csrf_check_with_the_header(client: httpx.AsyncClient, actors: Actors) -> None:
    user = await actors.create()
    await sign_in(client, user.email)
    home = await client.get("/")
    token = TOKEN.search(home.text).group(1)  # type: ignore[union-attr]
    assert f'hx-headers=\'{{"X-CSRF-Token": "{token}"}}\'' in home.text
    refused = await client.post("/logout", headers={"HX-Request": "true"})
    assert refused.status_code == 403
    out = await client.post("/logout", headers={"HX-Request": "true", "X-CSRF-Token": token})
    assert out.status_code == 303
    assert (await client.get("/account")).status_code == 303
