"""U1 storefront journeys in a real browser, each checked afterwards through the API or the
database; every page visited passes ``web.check()`` (axe, 390 px, no JavaScript errors)."""

from __future__ import annotations

import re
import urllib.parse
import uuid

import httpx
from playwright.async_api import expect

from mercato.accounts import repository as accounts_repository
from mercato.demo import load_demo
from tests.support.actors import DEFAULT_PASSWORD
from tests.web.browser import PHONE, Web

V1 = "/api/v1"


async def test_a_visitor_searches_filters_by_a_facet_and_opens_a_listing(web: Web) -> None:
    await load_demo(web.runtime)
    page = web.page
    await web.goto("/")
    await expect(page.get_by_role("heading", name="Popular")).to_be_visible()
    await expect(page.get_by_role("heading", name="Free")).to_be_visible()
    await web.check()
    await web.screenshot("home")
    await web.screenshot("home-phone", viewport=PHONE)

    await page.get_by_label("Search the store").first.fill("notes")
    await page.get_by_label("Search the store").first.press("Enter")
    await page.wait_for_url(re.compile(r"/search\?q=notes"))
    await expect(page.get_by_role("heading", name="Results for “notes”")).to_be_visible()
    await web.check()
    await web.screenshot("search")

    await page.locator(".facets").get_by_role("link", name=re.compile(r"^Plugins \d+$")).click()
    await page.wait_for_url(re.compile(r"kind=plugin"))
    shown = await page.locator(".result h3 a").all_inner_texts()
    await web.check()
    async with httpx.AsyncClient(base_url=web.url) as api:
        expected = (await api.get(f"{V1}/listings", params={"q": "notes", "kind": "plugin",
                                                            "sort": "relevance"})).json()
        unfiltered = (await api.get(f"{V1}/listings", params={"q": "notes"})).json()
    assert shown and shown == [item["name"] for item in expected["items"]]
    assert all(item["kind"] == "plugin" for item in expected["items"])
    facet_count = expected["facets"]["kind"]["plugin"]
    await expect(page.locator(".facets a[aria-current]")).to_contain_text(str(facet_count))
    # the chosen group still offers the other kinds, with what choosing them would find
    apps = unfiltered["facets"]["kind"]["app"]
    await expect(page.locator(".facets").get_by_role("link", name=f"Apps {apps}")).to_be_visible()

    await page.get_by_role("link", name=shown[0]).click()
    await expect(page.get_by_role("heading", level=1, name=shown[0])).to_be_visible()
    slug = urllib.parse.urlparse(page.url).path.rsplit("/", 1)[1]
    async with httpx.AsyncClient(base_url=web.url) as api:
        listing = (await api.get(f"{V1}/listings/{slug}")).json()
    assert listing["name"] == shown[0]
    await expect(page.get_by_role("heading", name="Versions")).to_be_visible()
    await expect(page.get_by_role("heading", name="Permissions it asks for")).to_be_visible()
    buy = "Get for free" if listing["free"] else "Buy"
    await expect(page.get_by_role("button", name=buy).first).to_be_visible()
    form = page.locator(".buy-box form").first
    assert await form.get_attribute("action") == (f"/listings/{slug}/get" if listing["free"] else "/cart")
    assert await form.locator("input[name=listing_id]").get_attribute("value") == listing["id"]
    # the demo listing's generated screenshots are shown and loaded (a blocked image fails check())
    shots = page.locator(".shots img")
    await expect(shots).to_have_count(3)
    await shots.last.scroll_into_view_if_needed()
    await page.wait_for_function(
        "[...document.querySelectorAll('.shots img')].every(i => i.complete && i.naturalWidth > 0)")
    await page.locator(".shots").evaluate("strip => { strip.scrollLeft = 0; }")
    await web.check()
    await web.screenshot("listing")
    await web.screenshot("listing-phone", viewport=PHONE)

    # the listing's category and publisher pages
    await page.locator(".listing-head").get_by_role("link", name=listing["category"]["name"]).click()
    await expect(page.get_by_role("heading", level=1, name=listing["category"]["name"])).to_be_visible()
    await web.check()
    await web.goto(f"/listings/{slug}")
    await page.locator(".listing-head").get_by_role("link", name=listing["publisher"]["name"]).click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text(listing["publisher"]["name"])
    if listing["publisher"]["verified"]:
        await expect(page.locator("h1 .verified")).to_be_visible()
    await web.check()


async def test_search_pages_on_to_the_next_page(web: Web) -> None:
    await load_demo(web.runtime)
    await web.goto("/search")
    first = await web.page.locator(".result h3 a").all_inner_texts()
    assert len(first) == 20
    await web.page.get_by_role("link", name="Next page").click()
    await web.page.wait_for_url(re.compile(r"cursor="))
    second = await web.page.locator(".result h3 a").all_inner_texts()
    assert second and not set(first) & set(second)
    await web.check()


async def test_a_new_visitor_registers_signs_out_and_signs_in(web: Web) -> None:
    page = web.page
    email = f"newcomer-{uuid.uuid4().hex[:6]}@example.org"
    await web.goto("/")
    await page.get_by_role("link", name="Register").click()
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Display name (optional)").fill("Newcomer")
    await page.get_by_label("Password").fill("short")
    await page.get_by_role("button", name="Create account").click()
    await expect(page.locator("#e-password")).to_be_visible()  # the message beside the field
    await expect(page.get_by_label("Email")).to_have_value(email)  # the input kept
    await web.check()
    await page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page.locator(".menu summary")).to_have_text("Newcomer")
    await web.check()
    async with web.runtime.db.read_session() as session:
        user = await accounts_repository.by_email(session, email)
    assert user is not None and user.display_name == "Newcomer"

    await page.locator(".menu summary").click()
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    await page.get_by_role("link", name="Sign in").click()
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator(".menu summary")).to_have_text("Newcomer")
    async with httpx.AsyncClient(base_url=web.url) as api:
        assert (await api.post(f"{V1}/auth/login", json={"email": email, "password": DEFAULT_PASSWORD})
                ).status_code == 200


async def test_a_signed_out_visitor_is_sent_to_sign_in_and_back(web: Web) -> None:
    email = f"back-{uuid.uuid4().hex[:6]}@example.org"
    async with web.runtime.db.transaction() as session:
        from mercato.accounts import service

        await service.create_user(session, web.runtime, email=email, password=DEFAULT_PASSWORD)
    page = web.page
    await web.goto("/account")
    await page.wait_for_url(re.compile(r"/login\?next=%2Faccount$"))
    await web.check()
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(re.compile(r"/account$"))
    await expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    await web.check()


async def test_account_tokens_are_shown_once_work_and_are_revocable(web: Web) -> None:
    email = f"tokens-{uuid.uuid4().hex[:6]}@example.org"
    async with web.runtime.db.transaction() as session:
        from mercato.accounts import service

        await service.create_user(session, web.runtime, email=email, password=DEFAULT_PASSWORD)
    page = web.page
    await web.goto("/login?next=/account")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_label("Token name").fill("laptop")
    await page.get_by_role("button", name="Create token").click()
    secret = (await page.locator("#new-token").inner_text()).strip()
    assert secret.startswith("mct_")
    await web.check()
    async with httpx.AsyncClient(base_url=web.url) as api:
        me = await api.get(f"{V1}/me", headers={"Authorization": f"Bearer {secret}"})
        assert me.status_code == 200 and me.json()["email"] == email
        await web.goto("/account")
        assert secret not in await page.content()  # shown once
        page.once("dialog", lambda dialog: dialog.accept())
        await page.get_by_role("button", name="Revoke laptop").click()
        await expect(page.get_by_text("Token revoked.")).to_be_visible()
        assert (await api.get(f"{V1}/me", headers={"Authorization": f"Bearer {secret}"})).status_code == 401

        # a personal Open VSX registry URL: shown once inside the editor settings, then revocable
        await page.get_by_label("Registry URL name").fill("laptop VSCodium")
        await page.get_by_role("button", name="Create registry URL").click()
        personal = (await page.locator("#new-registry-url").inner_text()).strip()
        assert personal.startswith(f"{web.url}/openvsx/t/mcv_")
        await expect(page.locator("#settings-vscodium")).to_contain_text(f'"serviceUrl": "{personal}/vscode/gallery"')
        await expect(page.locator("#settings-theia")).to_have_text(f"VSX_REGISTRY_URL={personal}/ yarn start")
        await web.check()
        assert (await api.get(f"{personal}/api/version")).status_code == 200
        await web.goto("/account")
        assert personal not in await page.content()
        page.once("dialog", lambda dialog: dialog.accept())
        await page.get_by_role("button", name="Revoke registry URL laptop VSCodium").click()
        await expect(page.get_by_text("Registry token revoked.")).to_be_visible()
        assert (await api.get(f"{personal}/api/version")).status_code == 401

    # a wrong current password: the message beside the field, nothing changed
    await page.get_by_label("Current password").fill("not my password")
    await page.get_by_label("New password").fill("another perfectly fine password")
    await page.get_by_role("button", name="Change password").click()
    await expect(page.locator("#e-current_password")).to_be_visible()
    await web.check()
    await page.get_by_label("Current password").fill(DEFAULT_PASSWORD)
    await page.get_by_label("New password").fill("another perfectly fine password")
    await page.get_by_role("button", name="Change password").click()
    await expect(page.get_by_text("Password changed.")).to_be_visible()  # and still signed in
    async with httpx.AsyncClient(base_url=web.url) as api:
        assert (await api.post(f"{V1}/auth/login", json={"email": email, "password": "another perfectly fine password"})
                ).status_code == 200
