"""The consoles in a real browser (WEB.md, PRODUCT.md U2–U4), each journey checked afterwards
through the API: 403 pages for people without the role; a developer creates a listing, uploads
a version (progress bar) and submits it; a reviewer claims it, sees findings and files, rejects
it with a reason, and approves the fixed version; an admin changes a setting, finds it in the
audit log, exports the CSV and suspends a listing. axe runs on every page visited."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from mercato.catalog import service as catalog
from tests.catalog.support import package_bytes
from tests.web.browser import Person, Web, person, publisher_of, sign_in

V1 = "/api/v1"


async def test_people_without_the_role_get_the_403_page_on_every_console(web: Web, http: httpx.AsyncClient) -> None:
    admin = await person(web, http, "marketplace_admin")
    owner = await person(web, http)
    slug = await publisher_of(http, admin, owner)
    nobody = await person(web, http)
    await sign_in(web, nobody)
    for path in ("/console/review", "/console/admin", "/console/admin/settings", "/console/admin/audit",
                 "/console/admin/dead-letters", "/console/admin/listings", f"/console/publisher/{slug}",
                 f"/console/publisher/{slug}/listings"):
        response = await web.goto(path)
        assert response is not None and response.status == 403, path
        assert await web.page.get_by_role("heading", name="Not allowed").is_visible(), path
        await web.check()
    # A reviewer is not a member of the publisher: its console is refused too.
    reviewer = await person(web, http, "reviewer")
    await sign_in(web, reviewer)
    response = await web.goto(f"/console/publisher/{slug}")
    assert response is not None and response.status == 403
    # Signed out: the sign-in page, not the console.
    await web.page.context.clear_cookies()
    await web.goto("/console/review")
    assert "/login" in web.page.url
    denied = await http.get(f"{V1}/admin/audit", headers=admin.headers,
                            params={"action": "authorization:denied", "limit": 50})
    assert any(row["actor_email"] == nobody.email for row in denied.json()["items"])


async def test_developer_publishes_and_reviewer_rejects_then_approves(web: Web, http: httpx.AsyncClient) -> None:
    admin = await person(web, http, "marketplace_admin")
    developer = await person(web, http)
    publisher = await publisher_of(http, admin, developer)
    reviewer = await person(web, http, "reviewer")
    slug = f"notes-{uuid.uuid4().hex[:6]}"

    # The developer creates the listing in the console.
    await sign_in(web, developer)
    await web.goto(f"/console/publisher/{publisher}/listings")
    await web.check()
    await web.page.get_by_label("Slug").fill(slug)
    await web.page.get_by_label("Name", exact=True).fill("Field Notes")
    await web.page.get_by_label("Summary").fill("Notes that sync.")
    await web.page.get_by_label("Description (Markdown)").fill("# Field Notes\n\nWrite **anything**.")
    await web.page.get_by_role("button", name="Preview the description").click()
    await web.page.locator("#description-preview strong").wait_for()
    await web.page.get_by_label("Digital price").fill("4.99")
    async with web.page.expect_navigation():
        await web.page.get_by_role("button", name="Create the listing").click()
    listing_url = web.page.url.replace(web.url, "")
    await web.check()
    listing = (await http.get(f"{V1}/listings/{slug}", headers=developer.headers)).json()
    assert listing["status"] == "draft" and listing["name"] == "Field Notes"

    # Upload 1.0.0 with the progress bar, then submit it.
    await web.goto(listing_url)
    seen: list[str] = []
    await web.page.expose_function("reportProgress", lambda *args: seen.append(args[-1]))
    await web.page.evaluate("""() => new MutationObserver(() => {
        const bar = document.querySelector('#upload-progress');
        if (bar && !bar.hidden) { window.reportProgress(String(bar.value)); }
    }).observe(document.body, {subtree: true, attributes: true, attributeFilter: ['value', 'hidden']})""")
    await web.page.get_by_label("Package").set_input_files(files=[{
        "name": f"{slug}-1.0.0.tar.gz", "mimeType": "application/gzip", "buffer": package_bytes(slug, "1.0.0")}])
    async with web.page.expect_navigation():
        await web.page.get_by_role("button", name="Upload", exact=True).click()
    assert "uploaded=1.0.0" in web.page.url
    assert seen, "the upload progress bar was never shown"
    await web.check()
    await web.page.get_by_label("Note for the reviewer").fill("First release")
    async with web.page.expect_navigation():
        await web.page.get_by_role("button", name="Submit 1.0.0 for review").click()
    version = (await http.get(f"{V1}/listings/{slug}/versions/1.0.0", headers=developer.headers)).json()
    assert version["status"] == "in_review"

    # The reviewer claims it, sees findings and files, and rejects it with a reason.
    await sign_in(web, reviewer)
    await web.goto("/console/review")
    await web.check()
    async with web.page.expect_navigation():
        await web.page.get_by_role("button", name=f"Claim {slug} 1.0.0").click()
    assert await web.page.get_by_role("heading", name="Automated checks").is_visible()
    assert await web.page.locator("table.files").get_by_text("bin/run").is_visible()
    assert await web.page.locator(".finding").count() >= 1
    assert await web.page.locator("#risk-score").inner_text() == str(version["checks"]["risk_score"])
    await web.check()
    await web.screenshot("console-review-task")
    await web.page.get_by_role("radio", name="Reject").check()
    # too short: refused beside the field, nothing changes
    await web.page.get_by_role("textbox", name="Reason").fill("ab")
    await web.page.get_by_role("button", name="Send decision").click()
    await web.page.locator("#e-reason").wait_for()
    assert (await http.get(f"{V1}/listings/{slug}/versions/1.0.0", headers=developer.headers)
            ).json()["status"] == "in_review"
    await web.check()
    await web.page.get_by_role("radio", name="Reject").check()
    await web.page.get_by_role("textbox", name="Reason").fill("The launcher writes outside its data folder.")
    async with web.page.expect_navigation():
        await web.page.get_by_role("button", name="Send decision").click()
    rejected = (await http.get(f"{V1}/listings/{slug}/versions/1.0.0", headers=developer.headers)).json()
    assert rejected["status"] == "rejected"
    assert rejected["decision_reason"] == "The launcher writes outside its data folder."

    # The developer sees the decision, uploads a fix and submits it.
    await sign_in(web, developer)
    await web.goto(listing_url)
    assert await web.page.get_by_text("The launcher writes outside its data folder.").is_visible()
    await web.check()
    await web.page.get_by_label("Why the rejection should be reconsidered").fill("It writes only to its own folder.")
    async with web.page.expect_navigation():
        await web.page.get_by_role("button", name="Appeal the rejection of 1.0.0").click()
    assert await web.page.get_by_text("Appeal: pending").is_visible()
    task = (await http.get(f"{V1}/review/tasks", headers=admin.headers, params={"appeal": "pending"})).json()
    assert [(t["listing"]["slug"], t["appeal_reason"]) for t in task["items"]] == [
        (slug, "It writes only to its own folder.")]
    await web.page.get_by_label("Package").set_input_files(files=[{
        "name": f"{slug}-1.0.1.tar.gz", "mimeType": "application/gzip", "buffer": package_bytes(slug, "1.0.1")}])
    async with web.page.expect_navigation():
        await web.page.get_by_role("button", name="Upload", exact=True).click()
    async with web.page.expect_navigation():
        await web.page.get_by_role("button", name="Submit 1.0.1 for review").click()

    # The reviewer approves the fix; the listing is published.
    await sign_in(web, reviewer)
    await web.goto("/console/review")
    async with web.page.expect_navigation():
        await web.page.get_by_role("button", name=f"Claim {slug} 1.0.1").click()
    await web.page.get_by_role("radio", name="Approve").check()
    async with web.page.expect_navigation():
        await web.page.get_by_role("button", name="Send decision").click()
    assert await web.page.locator("#task-status").inner_text() == "approved"
    published = (await http.get(f"{V1}/listings/{slug}")).json()
    assert published["status"] == "published"
    await web.page.context.clear_cookies()  # a visitor sees it in the storefront
    response = await web.goto(f"/listings/{slug}")
    assert response is not None and response.status == 200
    assert await web.page.get_by_role("heading", name="Field Notes", level=1).first.is_visible()

    # The publisher's overview draws its charts (a month of activity, recorded as the stats
    # handlers record it, so the picture has something to show).
    today = datetime.now(UTC).date()
    async with web.runtime.db.transaction() as session:
        for back in range(30):
            sales = (back * 7) % 5
            await catalog.add_to_day(session, uuid.UUID(published["id"]), today - timedelta(days=back),
                                     downloads=(back * 13) % 17 + 3, installs=(back * 5) % 9 + 1, sales=sales,
                                     revenue=sales * 499, ratings=back % 3, rating_sum=(back % 3) * 4)
    await sign_in(web, developer)
    await web.goto(f"/console/publisher/{publisher}?period=30")
    assert await web.page.locator("svg.chart").count() >= 5
    await web.check()
    await web.screenshot("console-publisher-overview")
    for section in ("orders", "coupons", "earnings", "members"):
        await web.goto(f"/console/publisher/{publisher}/{section}")
        await web.check()


async def test_admin_changes_a_setting_audits_exports_and_suspends(web: Web, http: httpx.AsyncClient) -> None:
    admin = await person(web, http, "marketplace_admin")
    developer = await person(web, http)
    publisher = await publisher_of(http, admin, developer)
    reviewer = await person(web, http, "reviewer")
    slug = f"suspect-{uuid.uuid4().hex[:6]}"
    created = await http.post(f"{V1}/listings", headers=developer.headers, json={
        "publisher": publisher, "slug": slug, "name": "Suspect App", "kind": "app"})
    assert created.status_code == 201, created.text
    uploaded = await http.post(f"{V1}/listings/{slug}/versions", headers=developer.headers,
                               files={"file": ("p.tar.gz", package_bytes(slug, "1.0.0"), "application/gzip")})
    assert uploaded.status_code == 201, uploaded.text
    await http.post(f"{V1}/listings/{slug}/versions/1.0.0/submit", headers=developer.headers)
    task = (await http.get(f"{V1}/review/tasks", headers=reviewer.headers)).json()["items"][0]
    await http.post(f"{V1}/review/tasks/{task['id']}/claim", headers=reviewer.headers)
    await http.post(f"{V1}/review/tasks/{task['id']}/approve", headers=reviewer.headers)
    assert (await http.get(f"{V1}/listings/{slug}")).status_code == 200

    await sign_in(web, admin)
    await web.goto("/console/admin")
    assert await web.page.get_by_role("heading", name="Store health").is_visible()
    await web.check()
    await web.screenshot("console-admin-health")

    # Settings: a value out of bounds is refused beside the field; a valid one is saved.
    await web.goto("/console/admin/settings")
    await web.check()
    await web.page.get_by_label("order_timeout_seconds").fill("5")
    await web.page.get_by_role("button", name="Save settings").click()
    await web.page.locator("#e-order_timeout_seconds").wait_for()
    await web.check()
    await web.page.get_by_label("order_timeout_seconds").fill("1200")
    async with web.page.expect_navigation():
        await web.page.get_by_role("button", name="Save settings").click()
    assert await web.page.get_by_role("status").is_visible()
    settings = (await http.get(f"{V1}/admin/settings", headers=admin.headers)).json()
    assert settings["policies"]["order_timeout_seconds"] == 1200

    # The audit log shows the change; the CSV export has it.
    await web.goto("/console/admin/audit")
    await web.page.get_by_label("Action").fill("settings:update")
    async with web.page.expect_navigation():
        await web.page.get_by_role("button", name="Filter").click()
    row = web.page.locator("table.audit tbody tr").first
    assert "settings:update" in await row.inner_text() and "1200" in await row.inner_text()
    await web.check()
    async with web.page.expect_download() as download_info:
        await web.page.get_by_role("link", name="Export CSV").click()
    download = await download_info.value
    rows = list(csv.DictReader(io.StringIO((await download.path()).read_text(encoding="utf-8"))))
    assert rows and all(r["action"] == "settings:update" for r in rows)
    assert any('"order_timeout_seconds": 1200' in r["after"] and r["actor_email"] == admin.email for r in rows)

    # Suspending the listing takes it out of the storefront.
    await web.goto(f"/console/admin/listings?q={slug}")
    await web.check()
    await web.page.get_by_label(f"Reason to suspend {slug}").fill("Reported as malware")
    async with web.page.expect_navigation():
        await web.page.get_by_role("button", name=f"Suspend {slug}").click()
    assert (await http.get(f"{V1}/listings/{slug}")).status_code == 404
    await web.page.context.clear_cookies()  # gone from the storefront
    response = await web.goto(f"/listings/{slug}")
    assert response is not None and response.status == 404
    await sign_in(web, admin)
    audit = (await http.get(f"{V1}/admin/audit", headers=admin.headers,
                            params={"action": "listing:suspend"})).json()["items"]
    assert audit and audit[0]["after"]["reason"] == "Reported as malware"
    await web.goto("/console/admin/dead-letters")
    await web.check()
    for section in ("payouts", "applications", "users"):
        await web.goto(f"/console/admin/{section}")
        await web.check()


async def test_publisher_ships_makes_a_coupon_and_is_paid_out(web: Web, http: httpx.AsyncClient) -> None:
    from tests.support.actors import Actors
    from tests.support.orders import Seller, fund, item, paid_physical_order, place, until

    actors = Actors(http, web.runtime)
    seller = await Seller.open(http, actors, web.runtime)
    buyer = await actors.create()
    admin = await actors.create("marketplace_admin")
    created, _box = await paid_physical_order(http, web.runtime, buyer, seller)
    developer = Person(seller.developer.email, seller.developer.headers)

    # Ship and deliver the physical order.
    await sign_in(web, developer)
    await web.goto(f"/console/publisher/{seller.slug}/orders")
    await web.check()
    await web.page.get_by_label("Carrier").fill("DHL")
    await web.page.get_by_label("Tracking number").fill("JD0001")
    async with web.page.expect_navigation():
        await web.page.get_by_role("button", name="Mark shipped").click()
    await web.check()
    async with web.page.expect_navigation():
        await web.page.get_by_role("button", name="Mark delivered").click()
    assert await until(web.runtime, created["id"], "completed") == "completed"

    # A coupon the buyer then uses.
    game = await seller.listing(digital=1000, name="Cave Game")
    await web.goto(f"/console/publisher/{seller.slug}/coupons")
    await web.check()
    await web.page.get_by_label("Code").fill("CAVE-20")
    await web.page.get_by_label("Discount").fill("20")
    await web.page.get_by_label("For", exact=True).select_option(label="Cave Game")
    async with web.page.expect_navigation():
        await web.page.get_by_role("button", name="Create the coupon").click()
    assert await web.page.get_by_text("CAVE-20").is_visible()
    await fund(web.runtime, buyer, 800)
    order = (await place(http, buyer, [item(game)], coupon="cave-20", wait=20)).json()
    assert order["total"]["amount"] == 800 and order["status"] == "completed", order

    # A payout request, approved by an admin in the admin console.
    for _ in range(200):
        available = (await http.get(f"{V1}/publishers/{seller.slug}/earnings",
                                    headers=seller.developer.headers)).json()["available"]["amount"]
        if available >= 1000:
            break
        await asyncio.sleep(0.05)
    await web.goto(f"/console/publisher/{seller.slug}/earnings")
    await web.check()
    await web.page.get_by_label("Amount").fill("10.00")
    async with web.page.expect_navigation():
        await web.page.get_by_role("button", name="Request the payout").click()
    assert await web.page.get_by_role("status").is_visible()
    await sign_in(web, Person(admin.email, admin.headers))
    await web.goto("/console/admin/payouts")
    await web.check()
    async with web.page.expect_navigation():
        await web.page.get_by_role("button", name=re.compile(f"^Approve .* to {seller.slug}$")).click()
    payouts = (await http.get(f"{V1}/admin/payouts", headers=admin.headers,
                              params={"publisher": seller.slug})).json()["items"]
    assert [(p["amount"]["amount"], p["status"]) for p in payouts] == [(1000, "approved")]
