"""The consoles in-process (fast): every action goes through its API route's service and
permission, refusals re-render the form with nothing changed, and the checks are made through
the API. The browser journeys are in test_consoles_browser.py."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from mercato.app.runtime import Runtime
from mercato.policies.schemas import Policies
from tests.catalog.support import V1, Shop, package_bytes
from tests.support.actors import Actor, Actors
from tests.support.pages import TOKEN, as_person, token_of


@pytest.fixture
async def shop(client: httpx.AsyncClient, actors: Actors) -> Shop:
    return await Shop.open(client, actors)


async def test_each_console_refuses_people_without_the_permission(client: httpx.AsyncClient, shop: Shop) -> None:
    as_person(client, shop.developer)
    for path in ("/console/review", "/console/admin", "/console/admin/settings", "/console/admin/audit",
                 "/console/admin/audit.csv", "/console/admin/dead-letters", "/console/admin/listings",
                 "/console/admin/payouts"):
        response = await client.get(path)
        assert response.status_code == 403, path
        assert "Not allowed" in response.text and response.headers["content-type"].startswith("text/html")
    as_person(client, shop.reviewer)
    assert (await client.get(f"/console/publisher/{shop.publisher}")).status_code == 403
    assert (await client.get(f"/console/publisher/{shop.publisher}/listings")).status_code == 403
    client.cookies.clear()
    signed_out = await client.get("/console/admin")
    assert signed_out.status_code == 303 and signed_out.headers["location"].startswith("/login")


async def test_a_reviewer_claims_and_a_short_reason_is_refused_without_change(client: httpx.AsyncClient,
                                                                             shop: Shop) -> None:
    listing = await shop.listing()
    assert (await shop.upload(listing["slug"], "1.0.0")).status_code == 201
    await shop.submit(listing["slug"], "1.0.0")
    task = await shop.task_of(listing["slug"], "1.0.0")
    as_person(client, shop.reviewer)
    queue = await client.get("/console/review")
    assert listing["slug"] in queue.text and "sla-ok" in queue.text
    token = TOKEN.search(queue.text).group(1)  # type: ignore[union-attr]
    claimed = await client.post(f"/console/review/{task['id']}/claim", data={"csrf_token": token})
    assert claimed.status_code == 303
    page = await client.get(claimed.headers["location"])
    assert "bin/run" in page.text and "changelog_missing" in page.text and "Send decision" in page.text
    short = await client.post(f"/console/review/{task['id']}/decide",
                              data={"csrf_token": token, "outcome": "rejected", "reason": "no"})
    assert short.status_code == 422 and 'id="e-reason"' in short.text and ">no</textarea>" in short.text
    state = await client.get(f"{V1}/review/tasks/{task['id']}", headers=shop.reviewer.headers)
    assert state.json()["status"] == "claimed"
    other = await shop.actors.create("reviewer")
    as_person(client, other)
    token = await token_of(client, "/console/review")
    stolen = await client.post(f"/console/review/{task['id']}/decide",
                               data={"csrf_token": token, "outcome": "approved", "reason": ""})
    assert stolen.status_code == 409 and "Another reviewer" in stolen.text


async def test_the_task_page_diffs_the_manifest_against_the_previous_approved_version(
        client: httpx.AsyncClient, shop: Shop) -> None:
    listing = await shop.published()
    slug = listing["slug"]
    data = package_bytes(slug, "1.1.0", manifest=(
        f'[package]\nname = "{slug}"\nversion = "1.1.0"\nkind = "app"\nsummary = "Now with sync."\n'
        f'license = "MIT"\n\n[compatibility]\nplatforms = ["any"]\n\n[launch]\nentry = "bin/run"\n\n'
        '[permissions]\nnetwork = ["sync.example.org"]\n'))
    assert (await shop.upload(slug, "1.1.0", data=data)).status_code == 201
    await shop.submit(slug, "1.1.0")
    task = await shop.task_of(slug, "1.1.0")
    as_person(client, shop.reviewer)
    page = await client.get(f"/console/review/{task['id']}")
    assert "Against 1.0.0, the previous approved version." in page.text
    diff = page.text[page.text.index('class="diff"'):page.text.index("</table>", page.text.index('class="diff"'))]
    diff = diff.replace("<wbr>", "")  # a key may break after its dots
    assert "permissions.network" in diff and "sync.example.org" in diff and "Now with sync." in diff
    assert "package.kind" not in diff  # unchanged keys are left out


async def test_an_admin_setting_is_validated_audited_and_applied(client: httpx.AsyncClient, shop: Shop) -> None:
    as_person(client, shop.admin)
    token = await token_of(client, "/console/admin/settings")
    form = {name: str(value) for name, value in Policies().model_dump().items()} | {"csrf_token": token}
    bad = await client.post("/console/admin/settings", data=form | {"payment_poll_after_seconds": "4000"})
    assert bad.status_code == 422 and 'value="4000"' in bad.text
    assert (await client.get(f"{V1}/admin/settings", headers=shop.admin.headers)
            ).json()["policies"]["payment_poll_after_seconds"] == 30
    good = await client.post("/console/admin/settings", data=form | {"order_timeout_seconds": "1200"})
    assert good.status_code == 303
    assert (await client.get(f"{V1}/admin/settings", headers=shop.admin.headers)
            ).json()["policies"]["order_timeout_seconds"] == 1200
    exported = await client.get("/console/admin/audit.csv", params={"action": "settings:update"})
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert exported.text.count("settings:update") == 1 and "order_timeout_seconds" in exported.text
    bad_filter = await client.get("/console/admin/audit", params={"since": "yesterday"})
    assert bad_filter.status_code == 422 and 'id="e-since"' in bad_filter.text


async def test_a_publisher_creates_uploads_a_large_package_and_submits(client: httpx.AsyncClient, shop: Shop) -> None:
    as_person(client, shop.developer)
    listings = f"/console/publisher/{shop.publisher}/listings"
    token = await token_of(client, listings)
    form = {"csrf_token": token, "slug": "field-notes", "kind": "app", "name": "Field Notes", "summary": "Hi",
            "description": "# Hello", "category": "", "tags": "notes, sync", "homepage": "", "license": "MIT",
            "icon_url": "", "screenshots": "", "digital_price": "1.50", "physical_price": "", "stock": ""}
    bad = await client.post(listings, data=form | {"digital_price": "1.234"})
    assert bad.status_code == 422 and 'id="e-digital_price"' in bad.text and 'value="Field Notes"' in bad.text
    assert (await client.get(f"{V1}/listings/field-notes", headers=shop.developer.headers)).status_code == 404
    created = await client.post(listings, data=form)
    assert created.status_code == 303
    listing = (await client.get(f"{V1}/listings/field-notes", headers=shop.developer.headers)).json()
    assert listing["tags"] == ["notes", "sync"] and listing["offers"][0]["price"]["amount"] == 150
    page = created.headers["location"]
    # Larger than a page form may be (64 KiB): the console's upload path takes packages.
    big = package_bytes("field-notes", "1.0.0", files={"data/noise.bin": bytes(range(256)) * 1024})
    uploaded = await client.post(f"{page}/versions", headers={"X-CSRF-Token": token},
                                 files={"file": ("p.tar.gz", big, "application/gzip")})
    assert uploaded.status_code == 303, uploaded.text
    wrong = await client.post(f"{page}/versions", headers={"X-CSRF-Token": token},
                              files={"file": ("p.tar.gz", package_bytes("other-name", "1.0.1"), "application/gzip")})
    assert wrong.status_code == 422 and "does not belong to this listing" in wrong.text
    submitted = await client.post(f"{page}/versions/1.0.0/submit", data={"csrf_token": token, "note": "First"})
    assert submitted.status_code == 303
    version = (await client.get(f"{V1}/listings/field-notes/versions/1.0.0", headers=shop.developer.headers)).json()
    assert version["status"] == "in_review"
    preview = await client.post(f"/console/publisher/{shop.publisher}/preview",
                                data={"csrf_token": token, "description": "**b** <script>x</script>"})
    assert "<strong>b</strong>" in preview.text and "<script>" not in preview.text
    overview = await client.get(f"/console/publisher/{shop.publisher}", params={"period": "7"})
    assert overview.status_code == 200 and overview.text.count('<svg class="chart"') == 6


async def test_an_admin_suspends_a_listing_and_decides_a_payout_refusal(client: httpx.AsyncClient,
                                                                        shop: Shop) -> None:
    listing = await shop.published()
    as_person(client, shop.admin)
    token = await token_of(client, "/console/admin/listings")
    short = await client.post(f"/console/admin/listings/{listing['id']}/suspend",
                              data={"csrf_token": token, "reason": "x"})
    assert short.status_code == 422
    assert (await client.get(f"{V1}/listings/{listing['slug']}")).status_code == 200
    done = await client.post(f"/console/admin/listings/{listing['id']}/suspend",
                             data={"csrf_token": token, "reason": "Malware report"})
    assert done.status_code == 303
    assert (await client.get(f"{V1}/listings/{listing['slug']}")).status_code == 404
    back = await client.post(f"/console/admin/listings/{listing['id']}/unsuspend", data={"csrf_token": token})
    assert back.status_code == 303
    assert (await client.get(f"{V1}/listings/{listing['slug']}")).status_code == 200


async def test_a_publisher_ships_and_delivers_a_physical_order(client: httpx.AsyncClient, actors: Actors,
                                                               runtime: Runtime, user: Actor) -> None:
    from tests.support.orders import Seller, paid_physical_order, until

    seller = await Seller.open(client, actors, runtime)
    created, _box = await paid_physical_order(client, runtime, user, seller)
    as_person(client, seller.developer)
    page = await client.get(f"/console/publisher/{seller.slug}/orders")
    assert page.status_code == 200 and "Berlin" in page.text and "Mark shipped" in page.text
    token = TOKEN.search(page.text).group(1)  # type: ignore[union-attr]
    missing = await client.post(f"/console/publisher/{seller.slug}/orders/{created['id']}/ship",
                                data={"csrf_token": token, "carrier": "DHL", "tracking_number": " "})
    assert missing.status_code == 422
    shipped = await client.post(f"/console/publisher/{seller.slug}/orders/{created['id']}/ship",
                                data={"csrf_token": token, "carrier": "DHL", "tracking_number": "JD0001"})
    assert shipped.status_code == 303
    order = (await client.get(f"{V1}/orders/{created['id']}", headers=user.headers)).json()
    assert order["status"] == "shipped" and order["shipments"][0]["tracking_number"] == "JD0001"
    delivered = await client.post(f"/console/publisher/{seller.slug}/orders/{created['id']}/deliver",
                                  data={"csrf_token": token})
    assert delivered.status_code == 303
    assert await until(runtime, created["id"], "completed") == "completed"
    as_person(client, user)
    assert (await client.get(f"/console/publisher/{seller.slug}/orders")).status_code == 403


async def test_a_publisher_requests_a_payout_once_and_an_admin_approves_it(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, user: Actor, admin: Actor) -> None:
    import asyncio

    from tests.support.orders import SHIPPING, Seller, paid_physical_order, until

    seller = await Seller.open(client, actors, runtime)
    created, _box = await paid_physical_order(client, runtime, user, seller)
    await client.post(f"{V1}/orders/{created['id']}/ship", headers=seller.developer.headers, json=SHIPPING)
    await client.post(f"{V1}/orders/{created['id']}/deliver", headers=seller.developer.headers)
    await until(runtime, created["id"], "completed")
    for _ in range(200):
        available = (await client.get(f"{V1}/publishers/{seller.slug}/earnings",
                                      headers=seller.developer.headers)).json()["available"]["amount"]
        if available > 0:
            break
        await asyncio.sleep(0.05)
    assert available > 0
    as_person(client, seller.developer)
    page = await client.get(f"/console/publisher/{seller.slug}/earnings")
    assert page.status_code == 200
    token = TOKEN.search(page.text).group(1)  # type: ignore[union-attr]
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    too_much = await client.post(f"/console/publisher/{seller.slug}/payouts",
                                 data={"csrf_token": token, "idempotency_key": str(uuid.uuid4()),
                                       "amount": f"{(available + 100) / 100:.2f}"})
    assert too_much.status_code == 409
    form = {"csrf_token": token, "idempotency_key": key, "amount": "10.00"}
    first = await client.post(f"/console/publisher/{seller.slug}/payouts", data=form)
    again = await client.post(f"/console/publisher/{seller.slug}/payouts", data=form)  # a second click
    assert first.status_code == again.status_code == 303
    payouts = (await client.get(f"{V1}/admin/payouts", headers=admin.headers,
                                params={"publisher": seller.slug})).json()["items"]
    assert [(p["amount"]["amount"], p["status"]) for p in payouts] == [(1000, "requested")]
    as_person(client, admin)
    token = await token_of(client, "/console/admin/payouts")
    short = await client.post(f"/console/admin/payouts/{payouts[0]['id']}/reject",
                              data={"csrf_token": token, "reason": ""})
    assert short.status_code == 422 and "payouts" in short.text  # the page again, the message beside the form
    approved = await client.post(f"/console/admin/payouts/{payouts[0]['id']}/approve", data={"csrf_token": token})
    assert approved.status_code == 303
    twice = await client.post(f"/console/admin/payouts/{payouts[0]['id']}/approve", data={"csrf_token": token})
    assert twice.status_code == 409 and 'class="site-header"' in twice.text
    payouts = (await client.get(f"{V1}/admin/payouts", headers=admin.headers,
                                params={"publisher": seller.slug})).json()["items"]
    assert payouts[0]["status"] == "approved"


async def test_a_coupon_made_in_the_console_is_used_by_a_buyer(client: httpx.AsyncClient, actors: Actors,
                                                              runtime: Runtime, user: Actor) -> None:
    from tests.support.orders import Seller, fund, item, place

    seller = await Seller.open(client, actors, runtime)
    box = await seller.listing(digital=1000)
    as_person(client, seller.developer)
    token = await token_of(client, f"/console/publisher/{seller.slug}/coupons")
    form = {"csrf_token": token, "code": "save-10", "kind": "percent", "value": "10", "listing": box["id"],
            "starts_on": "", "ends_on": "", "max_redemptions": "5", "per_user_limit": "1"}
    bad = await client.post(f"/console/publisher/{seller.slug}/coupons", data=form | {"value": "150"})
    assert bad.status_code == 422 and 'value="150"' in bad.text
    made = await client.post(f"/console/publisher/{seller.slug}/coupons", data=form)
    assert made.status_code == 303
    listed = await client.get(f"/console/publisher/{seller.slug}/coupons")
    assert "SAVE-10" in listed.text
    await fund(runtime, user, 900)
    order = (await place(client, user, [item(box)], coupon="save-10", wait=20)).json()
    assert order["total"]["amount"] == 900 and order["status"] == "completed", order
    as_person(client, user)
    assert (await client.get(f"/console/publisher/{seller.slug}/coupons")).status_code == 403


async def test_an_owner_adds_and_removes_a_member_and_the_last_owner_stays(client: httpx.AsyncClient,
                                                                           shop: Shop, actors: Actors) -> None:
    newcomer = await actors.create()
    as_person(client, shop.developer)
    path = f"/console/publisher/{shop.publisher}/members"
    token = await token_of(client, path)
    added = await client.post(path, data={"csrf_token": token, "email": newcomer.email, "role": "member"})
    assert added.status_code == 303
    members = (await client.get(f"{V1}/publishers/{shop.publisher}", headers=shop.developer.headers)).json()
    assert newcomer.email in str(members)
    last = await client.post(path, data={"csrf_token": token, "email": shop.developer.email, "role": "remove"})
    assert last.status_code == 409 and "Make someone else an owner first." in last.text
    removed = await client.post(path, data={"csrf_token": token, "email": newcomer.email, "role": "remove"})
    assert removed.status_code == 303
    members = (await client.get(f"{V1}/publishers/{shop.publisher}", headers=shop.developer.headers)).json()
    assert newcomer.email not in str(members)


async def test_an_admin_approves_and_rejects_publisher_applications(client: httpx.AsyncClient, actors: Actors,
                                                                    admin: Actor) -> None:
    applicants = [await actors.create(), await actors.create()]
    slugs = [f"studio-{n}-{uuid.uuid4().hex[:6]}" for n in range(2)]
    for applicant, slug in zip(applicants, slugs, strict=True):
        applied = await client.post(f"{V1}/publisher-applications", headers=applicant.headers,
                                    json={"slug": slug, "name": f"Studio {slug}", "description": "Tools"})
        assert applied.status_code == 201, applied.text
    pending = (await client.get(f"{V1}/admin/publisher-applications", headers=admin.headers,
                                params={"status": "pending"})).json()["items"]
    ids = {row["slug"]: row["id"] for row in pending}
    as_person(client, admin)
    page = await client.get("/console/admin/applications")
    assert all(slug in page.text for slug in slugs)
    token = TOKEN.search(page.text).group(1)  # type: ignore[union-attr]
    assert (await client.post(f"/console/admin/applications/{ids[slugs[0]]}/approve",
                              data={"csrf_token": token})).status_code == 303
    short = await client.post(f"/console/admin/applications/{ids[slugs[1]]}/reject",
                              data={"csrf_token": token, "reason": "no"})
    assert short.status_code == 422
    assert (await client.post(f"/console/admin/applications/{ids[slugs[1]]}/reject",
                              data={"csrf_token": token, "reason": "Not a software company"})).status_code == 303
    assert (await client.get(f"{V1}/publishers/{slugs[0]}")).status_code == 200
    assert (await client.get(f"{V1}/publishers/{slugs[1]}")).status_code == 404


async def test_an_admin_creates_a_reviewer_and_disables_an_account_but_not_an_admin(
        client: httpx.AsyncClient, actors: Actors, admin: Actor, user: Actor) -> None:
    as_person(client, admin)
    token = await token_of(client, "/console/admin/users")
    email = f"rev-{uuid.uuid4().hex[:6]}@example.org"
    form = {"csrf_token": token, "email": email, "display_name": "Rae", "password": "a perfectly fine password 42"}
    too_high = await client.post("/console/admin/users", data=form | {"roles": "marketplace_admin"})
    assert too_high.status_code == 403 and "You cannot grant" in too_high.text
    weak = await client.post("/console/admin/users", data=form | {"password": "short", "roles": "reviewer"})
    assert weak.status_code == 422 and f'value="{email}"' in weak.text
    made = await client.post("/console/admin/users", data=form | {"roles": "reviewer"})
    assert made.status_code == 303
    found = (await client.get(f"{V1}/admin/users", headers=admin.headers, params={"q": email})).json()["items"]
    assert [(u["email"], sorted(u["roles"])) for u in found] == [(email, ["reviewer", "user"])]
    disabled = await client.post(f"/console/admin/users/{user.id}", data={"csrf_token": token, "action": "disable"})
    assert disabled.status_code == 303
    assert (await client.get(f"{V1}/me", headers=user.headers)).status_code == 401
    myself = await client.post(f"/console/admin/users/{admin.id}", data={"csrf_token": token, "action": "disable"})
    assert myself.status_code == 403
