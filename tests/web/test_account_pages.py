"""The account page and the layout's header in-process: the publisher application, the unread
notifications count, and htmx's CSRF header."""

from __future__ import annotations

import html
import json
import re
import uuid

import httpx

from mercato.app.runtime import Runtime
from mercato.notifications import service as notifications
from tests.support.actors import Actors
from tests.support.pages import TOKEN, sign_in

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
    mine = (await client.get(f"{V1}/me/publisher-applications", headers=user.headers)).json()["items"]
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


async def test_personal_registry_urls_are_created_shown_once_with_editor_settings_and_revoked(
        client: httpx.AsyncClient, actors: Actors) -> None:
    user = await actors.create()
    await sign_in(client, user.email)
    page = await client.get("/account")
    token = TOKEN.search(page.text).group(1)  # type: ignore[union-attr]
    text = html.unescape(page.text)
    assert "Editor extensions (Open VSX)" in text and "You have no personal registry URLs." in text
    # the settings to paste, filled with this store's public registry URL until a personal one exists
    assert '"serviceUrl": "http://mercato.test/openvsx/vscode/gallery"' in text
    assert "VSX_REGISTRY_URL=http://mercato.test/openvsx/ yarn start" in text

    bad = await client.post("/account/registry-tokens", data={"name": "  ", "csrf_token": token})
    assert bad.status_code == 422 and 'id="e-registry-name"' in bad.text
    assert (await client.get(f"{V1}/me/registry-tokens", headers=user.headers)).json()["items"] == []

    created = await client.post("/account/registry-tokens", data={"name": "laptop VSCodium", "csrf_token": token})
    assert created.status_code == 201
    shown = html.unescape(created.text)
    url = re.search(r'id="new-registry-url">(http://mercato.test/openvsx/t/(mcv_[^<\s]+))</code>', shown)
    assert url, "the personal registry URL is shown"
    personal, secret = url.group(1), url.group(2)
    assert json.loads(re.search(r'id="settings-vscodium">(.*?)</pre>', shown, re.DOTALL).group(1)) == {  # type: ignore[union-attr]
        "extensionsGallery": {"serviceUrl": f"{personal}/vscode/gallery", "itemUrl": f"{personal}/vscode/item"}}
    assert (f"export EXTENSIONS_GALLERY='{{\"serviceUrl\": \"{personal}/vscode/gallery\", "
            f"\"itemUrl\": \"{personal}/vscode/item\"}}'") in shown
    assert f"VSX_REGISTRY_URL={personal}/ yarn start" in shown
    assert f"ovsx get namespace.extension -r {personal}" in shown
    listed = (await client.get(f"{V1}/me/registry-tokens", headers=user.headers)).json()["items"]
    assert [(t["name"], t["hint"]) for t in listed] == [("laptop VSCodium", secret[:10])]
    assert (await client.get(f"/openvsx/t/{secret}/api/version")).status_code == 200  # the URL works

    again = await client.get("/account")
    assert secret not in again.text and f"{secret[:10]}…" in again.text  # shown once; listed by its first characters
    revoked = await client.post(f"/account/registry-tokens/{listed[0]['id']}/revoke", data={"csrf_token": token})
    assert revoked.status_code == 303 and revoked.headers["location"] == "/account?done=registry-revoked#openvsx"
    assert (await client.get(f"/openvsx/t/{secret}/api/version")).status_code == 401
    assert (await client.get(f"{V1}/me/registry-tokens", headers=user.headers)).json()["items"] == []
    twice = await client.post(f"/account/registry-tokens/{listed[0]['id']}/revoke", data={"csrf_token": token})
    assert twice.status_code == 303  # a second click changes nothing
