"""The publisher console (U2): the overview with charts over time, listings (create, edit with
a Markdown preview), versions (upload with a progress bar, submit, the checks' findings and risk
score, the review decision, appeal, yank), delist and relist.

Members of the publisher (``own``) and admins (``any``), through the services of the API routes
and their permissions (``stats:read``, ``listing:create|update|delist``, ``version:upload|submit|yank``,
``review_appeal:create``).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

import anyio
from fastapi import File, Form, Request, UploadFile
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.responses import HTMLResponse, Response

from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.catalog import service as catalog
from mercato.catalog.errors import ListingNotFound
from mercato.catalog.schemas import ListingCreate, ListingUpdate
from mercato.coupons import service as coupon_service
from mercato.coupons.schemas import CouponCreate
from mercato.earnings import service as earnings
from mercato.earnings.schemas import PayoutCreate
from mercato.kit.clock import utcnow
from mercato.kit.errors import Forbidden, MercatoError, ValidationFailed
from mercato.kit.markdown import render_markdown
from mercato.kit.money import SignedMoney
from mercato.licences import service as licences
from mercato.models import Listing, Publisher
from mercato.moderation import service as review
from mercato.orders import service as orders
from mercato.orders.schemas import Shipping
from mercato.platform import idempotency
from mercato.platform.routing import ReadSession, RuntimeDep, WriteSession, get_runtime
from mercato.publishers import service as publishers
from mercato.publishers.schemas import MemberAdd
from mercato.releases import service as publishing
from mercato.releases.ingest import ingest, spool
from mercato.releases.schemas import SubmitBody, YankBody
from mercato.stats import service as stats
from mercato.web.console.access import console_actor, discard, refused
from mercato.web.console.charts import line_chart
from mercato.web.pages import page_router, redirect, render

router = page_router(prefix="/console/publisher/{slug}")

Member = Annotated[Principal, console_actor(Permission.stats_read)]
Editor = Annotated[Principal, console_actor(Permission.listing_update)]
Creator = Annotated[Principal, console_actor(Permission.listing_create)]
Uploader = Annotated[Principal, console_actor(Permission.version_upload)]
Submitter = Annotated[Principal, console_actor(Permission.version_submit)]
Yanker = Annotated[Principal, console_actor(Permission.version_yank)]
Delister = Annotated[Principal, console_actor(Permission.listing_delist)]
Appellant = Annotated[Principal, console_actor(Permission.review_appeal_create)]

PERIODS = {"7": 7, "30": 30, "90": 90, "365": 365}
KINDS = ("app", "plugin", "game")
LISTING_FIELDS = ("slug", "name", "kind", "summary", "description", "category", "tags", "homepage", "license",
                  "icon_url", "screenshots", "digital_price", "physical_price", "stock")


async def _publisher(session: AsyncSession, actor: Principal, slug: str, permission: Permission) -> Publisher:
    """The publisher, if the actor acts for it under ``permission`` (member or ``any``); else the 403 page."""
    publisher = await publishers.get(session, slug)
    if not await publishers.acts_for(session, actor, permission, publisher):
        raise Forbidden(f"Only members of {publisher.slug!r} and admins may open its console.")
    return publisher


async def _listing(session: AsyncSession, actor: Principal, publisher: Publisher, key: str,
                   permission: Permission) -> Listing:
    listing = await catalog.get_for_change(session, actor, key, permission)
    if listing.publisher_id != publisher.id:
        raise ListingNotFound(f"{publisher.slug} has no listing {key!r}.")
    return listing


# --- overview -------------------------------------------------------------------------------------

@router.get("", name="console_publisher")
async def overview(slug: str, request: Request, session: ReadSession, actor: Member, rt: RuntimeDep,
                   period: Literal["7", "30", "90", "365"] = "30") -> Response:
    publisher = await _publisher(session, actor, slug, Permission.stats_read)
    until = utcnow().date()
    since = until - timedelta(days=PERIODS[period] - 1)
    data = await stats.publisher_stats(session, actor=actor, slug=slug, since=since, until=until,
                                       currency=rt.settings.currency)
    days = [since + timedelta(days=n) for n in range(PERIODS[period])]

    def per_listing(metric: str, scale: float = 1) -> list[tuple[str, list[float]]]:
        rows = []
        for item in data.listings:
            values = [(getattr(d, metric).amount if metric == "revenue" else getattr(d, metric)) / scale
                      for d in item.days]
            rows.append((item.slug, values))
        if len(rows) > 1:
            rows.insert(0, ("all listings", [sum(v[i] for _, v in rows) for i in range(len(days))]))
        return rows

    charts = [
        ("Sales", line_chart(f"Sales per day, last {period} days", days, per_listing("sales"))),
        (f"Revenue ({rt.settings.currency})", line_chart(f"Revenue per day in {rt.settings.currency}", days,
                                                         per_listing("revenue", 100))),
        ("Downloads", line_chart("Downloads per day", days, per_listing("downloads"))),
        ("Installs", line_chart("Installs per day", days, per_listing("installs"))),
        ("Ratings", line_chart("Ratings given per day", days, per_listing("ratings"))),
        ("Average rating", line_chart("Average rating given per day (0 on days without ratings)", days,
                                      [(item.slug, [d.rating_average or 0 for d in item.days])
                                       for item in data.listings],
                                      summaries=[f"{item.totals.rating_average or 0:g} over the period"
                                                 for item in data.listings])),
    ]
    return await render(request, "console/publisher/overview.html", {
        "publisher": publisher, "stats": data, "charts": charts, "period": period, "console": "publisher",
        "section": "overview"})


# --- listings -------------------------------------------------------------------------------------

def _money(raw: str, field: str, problems: list[dict[str, Any]]) -> int | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        value = Decimal(raw)
        if value < 0 or value != value.quantize(Decimal("0.01")):
            raise InvalidOperation
    except InvalidOperation:
        problems.append({"loc": ["form", field], "msg": "A price like 9.99 (0 for free)", "type": "value_error"})
        return None
    return int(value * 100)


def listing_body(form: FormData, currency: str, *, new: bool) -> dict[str, Any]:
    """The API's listing body from the form fields (prices in major units, tags by commas,
    screenshots one per line). Raises ValidationFailed naming the form fields."""
    values = {name: str(form.get(name, "")) for name in LISTING_FIELDS}
    problems: list[dict[str, Any]] = []
    body: dict[str, Any] = {
        "name": values["name"].strip(), "summary": values["summary"].strip(), "description": values["description"],
        "category": values["category"] or None,
        "tags": [t.strip().lower() for t in values["tags"].split(",") if t.strip()],
        "homepage": values["homepage"].strip() or None, "license": values["license"].strip() or None,
        "icon_url": values["icon_url"].strip() or None,
        "screenshots": [line.strip() for line in values["screenshots"].splitlines() if line.strip()],
    }
    if new:
        body.update(slug=values["slug"].strip(), kind=values["kind"])
    offers = []
    digital = _money(values["digital_price"], "digital_price", problems)
    physical = _money(values["physical_price"], "physical_price", problems)
    if digital is not None:
        offers.append({"delivery": "digital", "price": {"amount": digital, "currency": currency}})
    if physical is not None:
        stock = values["stock"].strip() or "0"
        if not stock.isdigit():
            problems.append({"loc": ["form", "stock"], "msg": "A whole number of copies", "type": "value_error"})
        else:
            offers.append({"delivery": "physical", "price": {"amount": physical, "currency": currency},
                           "stock": int(stock)})
    if not new and not offers:
        problems.append({"loc": ["form", "digital_price"], "msg": "Give a digital or a physical price (0: free)",
                         "type": "value_error"})
    body["offers"] = offers
    if problems:
        raise ValidationFailed("Check the highlighted fields.", errors=problems)
    return body


def _invalid(exc: ValidationError) -> ValidationFailed:
    errors = []
    for item in exc.errors():
        loc = [str(part) for part in item["loc"]]
        field = loc[0] if loc else "form"
        if field == "offers":
            field = "physical_price" if "stock" in loc else "digital_price"
        errors.append({"loc": ["form", field], "msg": str(item["msg"]), "type": item["type"]})
    return ValidationFailed("Check the highlighted fields.", errors=errors)


def _form_values(listing: Listing | None) -> dict[str, Any]:
    if listing is None:
        return {"kind": "app", "digital_price": "0"}
    return {"name": listing.name, "summary": listing.summary, "description": listing.description,
            "tags": ", ".join(listing.tags or []), "homepage": listing.homepage or "", "license": listing.license or "",
            "icon_url": listing.icon_url or "", "screenshots": "\n".join(listing.screenshots or []),
            "digital_price": "" if listing.digital_price is None else f"{listing.digital_price / 100:.2f}",
            "physical_price": "" if listing.physical_price is None else f"{listing.physical_price / 100:.2f}",
            "stock": "" if listing.stock is None else str(listing.stock), "category": ""}


async def _listings_context(session: AsyncSession, actor: Principal, publisher: Publisher) -> dict[str, Any]:
    return {"publisher": publisher, "listings": await catalog.of_publisher(session, actor, publisher, after=None,
                                                                          limit=100),
            "categories": await catalog.categories(session), "kinds": KINDS, "console": "publisher",
            "section": "listings"}


@router.get("/listings", name="console_publisher_listings")
async def listings(slug: str, request: Request, session: ReadSession, actor: Editor) -> Response:
    publisher = await _publisher(session, actor, slug, Permission.listing_update)
    return await render(request, "console/publisher/listings.html", {
        **await _listings_context(session, actor, publisher), "values": _form_values(None)})


@router.post("/listings", name="console_publisher_create")
async def create_listing(slug: str, request: Request, session: WriteSession, actor: Creator,
                         rt: RuntimeDep) -> Response:
    form = await request.form()
    try:
        body = listing_body(form, rt.settings.currency, new=True)
        try:
            fields = ListingCreate.model_validate({**body, "publisher": slug}).model_dump(mode="json")
        except ValidationError as exc:
            raise _invalid(exc) from None
        listing = await catalog.create(session, actor=actor, fields=fields, currency=rt.settings.currency)
    except MercatoError as error:
        await discard(session)
        async with rt.db.read_session() as reader:
            context = await _listings_context(reader, actor, await publishers.get(reader, slug))
        return await refused(request, error, "console/publisher/listings.html", {
            **context, "values": {name: str(form.get(name, "")) for name in LISTING_FIELDS}})
    return redirect(str(request.url_for("console_publisher_listing", slug=slug, listing_id=listing.id)))


async def _listing_context(session: AsyncSession, actor: Principal, publisher: Publisher,
                           listing: Listing) -> dict[str, Any]:
    versions = await publishing.list_versions(session, actor, listing, after=None, limit=50)
    tasks = {v.id: await review.latest_of_version(session, v.id) for v in versions}
    category = None
    if listing.category_id:
        category = (await catalog.categories_by_id(session, {listing.category_id})).get(listing.category_id)
    values = _form_values(listing)
    values["category"] = category.slug if category else ""
    key_pool = (await licences.pool(session, listing_id=listing.id)
                if actor.has(Permission.licence_key_manage) else None)
    return {"publisher": publisher, "listing": listing, "versions": versions, "tasks": tasks, "values": values,
            "categories": await catalog.categories(session), "key_pool": key_pool, "key_values": {},
            "console": "publisher", "section": "listings"}


@router.get("/listings/{listing_id}", name="console_publisher_listing")
async def listing_page(slug: str, listing_id: str, request: Request, session: ReadSession, actor: Editor,
                       uploaded: str = "", keys_added: int | None = None, keys_skipped: int | None = None) -> Response:
    publisher = await _publisher(session, actor, slug, Permission.listing_update)
    listing = await _listing(session, actor, publisher, listing_id, Permission.listing_update)
    return await render(request, "console/publisher/listing.html", {
        **await _listing_context(session, actor, publisher, listing), "uploaded": uploaded,
        "keys_added": keys_added, "keys_skipped": keys_skipped})


async def _refused_on_listing(request: Request, session: AsyncSession, actor: Principal, slug: str, listing_id: str,
                              error: MercatoError, values: dict[str, Any] | None = None) -> Response:
    await discard(session)
    async with get_runtime(request).db.read_session() as reader:
        publisher = await publishers.get(reader, slug)
        listing = await catalog.get_visible(reader, actor, listing_id)
        context = await _listing_context(reader, actor, publisher, listing)
    if values:
        context["values"] = {**context["values"], **values}
    return await refused(request, error, "console/publisher/listing.html", context)


@router.post("/listings/{listing_id}", name="console_publisher_update")
async def update_listing(slug: str, listing_id: str, request: Request, session: WriteSession, actor: Editor,
                         rt: RuntimeDep) -> Response:
    form = await request.form()
    try:
        publisher = await _publisher(session, actor, slug, Permission.listing_update)
        listing = await _listing(session, actor, publisher, listing_id, Permission.listing_update)
        body = listing_body(form, rt.settings.currency, new=False)
        try:
            changes = ListingUpdate.model_validate(body).model_dump(mode="json")
        except ValidationError as exc:
            raise _invalid(exc) from None
        await catalog.update(session, actor=actor, key=str(listing.id), changes=changes,
                             currency=rt.settings.currency)
    except MercatoError as error:
        return await _refused_on_listing(request, session, actor, slug, listing_id, error,
                                         {name: str(form.get(name, "")) for name in LISTING_FIELDS})
    return redirect(str(request.url_for("console_publisher_listing", slug=slug, listing_id=listing_id)) + "?saved=1")


@router.post("/preview", name="console_publisher_preview")
async def preview(slug: str, request: Request, session: ReadSession, actor: Editor,
                  description: Annotated[str, Form(max_length=50_000)] = "") -> Response:
    """The description as the listing page will show it (htmx swaps it in beside the field)."""
    await _publisher(session, actor, slug, Permission.listing_update)
    html = render_markdown(description) or "<p class=\"muted\">Nothing to preview.</p>"
    return HTMLResponse(f'<div class="markdown">{html}</div>')


async def listing_action(slug: str, listing_id: str, action: str, request: Request, session: AsyncSession,
                         actor: Principal) -> Response:
    try:
        publisher = await _publisher(session, actor, slug, Permission.listing_delist)
        listing = await _listing(session, actor, publisher, listing_id, Permission.listing_delist)
        move = catalog.delist if action == "delist" else catalog.relist
        await move(session, actor=actor, key=str(listing.id))
    except MercatoError as error:
        return await _refused_on_listing(request, session, actor, slug, listing_id, error)
    return redirect(str(request.url_for("console_publisher_listing", slug=slug, listing_id=listing_id)))


# --- versions -------------------------------------------------------------------------------------

@router.post("/listings/{listing_id}/versions", name="console_publisher_upload")
async def upload(slug: str, listing_id: str, request: Request, session: WriteSession, actor: Uploader,
                 rt: RuntimeDep, file: Annotated[UploadFile, File()]) -> Response:
    """The API's upload (``POST /listings/{id}/versions``): inspected without unpacking, checked,
    stored by its SHA-256, recorded as ``uploaded``. The browser shows the bytes sent as they go."""
    try:
        async with rt.db.read_session() as check_session:
            publisher = await _publisher(check_session, actor, slug, Permission.version_upload)
            listing = await _listing(check_session, actor, publisher, listing_id, Permission.version_upload)
        spooled = await anyio.to_thread.run_sync(spool, file, rt.settings.data_dir / "tmp",
                                                 rt.settings.package_max_bytes)
        try:
            archive, report = await ingest(rt, spooled, declared_sha256=None)
        finally:
            spooled.unlink(missing_ok=True)
            await file.close()
        version = await publishing.record_upload(session, actor=actor, key=str(listing.id), archive=archive,
                                                 report=report)
    except MercatoError as error:
        return await _refused_on_listing(request, session, actor, slug, listing_id, error)
    return redirect(str(request.url_for("console_publisher_listing", slug=slug, listing_id=listing_id))
                    + f"?uploaded={version.version}#v-{version.version}")


@router.post("/listings/{listing_id}/versions/{version}/submit", name="console_publisher_submit")
async def submit(slug: str, listing_id: str, version: str, request: Request, session: WriteSession,
                 actor: Submitter, note: Annotated[str, Form(max_length=2000)] = "",
                 security_update: Annotated[bool, Form()] = False) -> Response:
    try:
        publisher = await _publisher(session, actor, slug, Permission.version_submit)
        listing = await _listing(session, actor, publisher, listing_id, Permission.version_submit)
        body = SubmitBody(note=note, security_update=security_update)
        await review.submit(session, actor=actor, key=str(listing.id), version=version,
                            security_update=body.security_update, note=body.note)
    except MercatoError as error:
        return await _refused_on_listing(request, session, actor, slug, listing_id, error)
    return redirect(str(request.url_for("console_publisher_listing", slug=slug, listing_id=listing_id))
                    + f"#v-{version}")


async def version_action(slug: str, listing_id: str, version: str, action: str, request: Request,
                         session: AsyncSession, actor: Principal, reason: str) -> Response:
    """Appeal a rejection (``review_appeal:create``) or yank an approved version (``version:yank``)."""
    permission = Permission.review_appeal_create if action == "appeal" else Permission.version_yank
    try:
        publisher = await _publisher(session, actor, slug, permission)
        listing = await _listing(session, actor, publisher, listing_id, permission)
        try:
            body = YankBody.model_validate({"reason": reason})
        except ValidationError as exc:
            raise ValidationFailed("Give a reason of at least 3 characters.", errors=[
                {"loc": ["form", "reason"], "msg": str(e["msg"]), "type": e["type"]} for e in exc.errors()]) from None
        if action == "appeal":
            await review.appeal(session, actor=actor, key=str(listing.id), version=version, reason=body.reason)
        else:
            await publishing.yank(session, actor=actor, key=str(listing.id), version=version, reason=body.reason)
    except MercatoError as error:
        return await _refused_on_listing(request, session, actor, slug, listing_id, error)
    return redirect(str(request.url_for("console_publisher_listing", slug=slug, listing_id=listing_id))
                    + f"#v-{version}")


@router.post("/listings/{listing_id}/delist", name="console_publisher_delist")
async def delist(slug: str, listing_id: str, request: Request, session: WriteSession, actor: Delister) -> Response:
    return await listing_action(slug, listing_id, "delist", request, session, actor)


@router.post("/listings/{listing_id}/relist", name="console_publisher_relist")
async def relist(slug: str, listing_id: str, request: Request, session: WriteSession, actor: Delister) -> Response:
    return await listing_action(slug, listing_id, "relist", request, session, actor)


@router.post("/listings/{listing_id}/versions/{version}/appeal", name="console_publisher_appeal")
async def appeal(slug: str, listing_id: str, version: str, request: Request, session: WriteSession,
                 actor: Appellant, reason: Annotated[str, Form(max_length=2000)] = "") -> Response:
    return await version_action(slug, listing_id, version, "appeal", request, session, actor, reason)


@router.post("/listings/{listing_id}/versions/{version}/yank", name="console_publisher_yank")
async def yank(slug: str, listing_id: str, version: str, request: Request, session: WriteSession,
               actor: Yanker, reason: Annotated[str, Form(max_length=2000)] = "") -> Response:
    return await version_action(slug, listing_id, version, "yank", request, session, actor, reason)


# --- physical orders ------------------------------------------------------------------------------

Fulfiller = Annotated[Principal, console_actor(Permission.order_fulfil)]
Canceller = Annotated[Principal, console_actor(Permission.order_cancel)]
ORDER_FILTERS = ("awaiting_shipment", "shipped", "completed", "canceled", "")


async def _orders_context(session: AsyncSession, actor: Principal, slug: str, status: str) -> dict[str, Any]:
    return {"publisher": await publishers.get(session, slug), "status": status, "filters": ORDER_FILTERS,
            "orders": await orders.of_publisher(session, actor=actor, slug=slug, status=status or None, after=None,
                                                limit=100),
            "console": "publisher", "section": "orders"}


@router.get("/orders", name="console_publisher_orders")
async def orders_page(slug: str, request: Request, session: ReadSession, actor: Fulfiller,
                      status: Literal["awaiting_shipment", "shipped", "completed", "canceled", ""] = "awaiting_shipment"
                      ) -> Response:
    """Physical orders to ship, on their way and done (``GET /publishers/{slug}/orders``)."""
    return await render(request, "console/publisher/orders.html", await _orders_context(session, actor, slug, status))


async def _order_refused(request: Request, session: AsyncSession, actor: Principal, slug: str,
                         error: MercatoError) -> Response:
    await discard(session)
    async with get_runtime(request).db.read_session() as reader:
        context = await _orders_context(reader, actor, slug, "awaiting_shipment")
    return await refused(request, error, "console/publisher/orders.html", context)


@router.post("/orders/{order_id}/ship", name="console_publisher_ship")
async def ship(slug: str, order_id: uuid.UUID, request: Request, session: WriteSession, actor: Fulfiller,
               carrier: Annotated[str, Form(max_length=64)] = "",
               tracking_number: Annotated[str, Form(max_length=128)] = "") -> Response:
    try:
        try:
            body = Shipping.model_validate({"carrier": carrier.strip(), "tracking_number": tracking_number.strip()})
        except ValidationError as exc:
            raise _invalid(exc) from None
        await orders.ship(session, actor=actor, order_id=order_id, carrier=body.carrier,
                          tracking_number=body.tracking_number)
    except MercatoError as error:
        return await _order_refused(request, session, actor, slug, error)
    return redirect(str(request.url_for("console_publisher_orders", slug=slug)) + "?status=shipped")


@router.post("/orders/{order_id}/deliver", name="console_publisher_deliver")
async def deliver(slug: str, order_id: uuid.UUID, request: Request, session: WriteSession,
                  actor: Fulfiller) -> Response:
    try:
        await orders.deliver(session, actor=actor, order_id=order_id)
    except MercatoError as error:
        return await _order_refused(request, session, actor, slug, error)
    return redirect(str(request.url_for("console_publisher_orders", slug=slug)) + "?status=shipped")


@router.post("/orders/{order_id}/cancel", name="console_publisher_cancel")
async def cancel(slug: str, order_id: uuid.UUID, request: Request, session: WriteSession,
                 actor: Canceller) -> Response:
    """Cancel an order awaiting shipment: the buyer is refunded (``POST /orders/{id}/cancel``)."""
    try:
        await orders.cancel(session, actor=actor, order_id=order_id)
    except MercatoError as error:
        return await _order_refused(request, session, actor, slug, error)
    return redirect(str(request.url_for("console_publisher_orders", slug=slug)) + "?status=canceled")


# --- earnings and payouts -------------------------------------------------------------------------

EarningsReader = Annotated[Principal, console_actor(Permission.earnings_read)]
PayoutRequester = Annotated[Principal, console_actor(Permission.payout_request)]


async def _earnings_context(session: AsyncSession, actor: Principal, slug: str, currency: str) -> dict[str, Any]:
    publisher = await earnings.publisher_for(session, actor=actor, slug=slug, permission=Permission.earnings_read)
    payouts, _ = await earnings.search(session, publisher=slug, status=None, after=None, limit=50, with_total=False)
    summary = await earnings.summary(session, publisher_id=publisher.id)
    moved = await earnings.movements(session, publisher_id=publisher.id, after=None, limit=20)

    def money(amount: int) -> SignedMoney:
        return SignedMoney(amount=amount, currency=currency)

    return {"publisher": publisher, "payouts": payouts, "idempotency_key": str(uuid.uuid4()),
            "figures": [("available", money(summary.available), "available for a payout"),
                        ("pending", money(summary.pending_payouts), "payouts waiting"),
                        ("paid", money(summary.paid_out), "paid out"),
                        ("earned", money(summary.total_earned), "earned (after commission)")],
            "movements": [(entry.created_at, tx.memo or tx.kind, money(entry.amount)) for entry, tx in moved],
            "console": "publisher", "section": "earnings"}


@router.get("/earnings", name="console_publisher_earnings")
async def earnings_page(slug: str, request: Request, session: ReadSession, actor: EarningsReader,
                        rt: RuntimeDep) -> Response:
    return await render(request, "console/publisher/earnings.html", {
        **await _earnings_context(session, actor, slug, rt.settings.currency), "currency": rt.settings.currency})


@router.post("/payouts", name="console_publisher_request_payout")
async def request_payout(slug: str, request: Request, session: WriteSession, actor: PayoutRequester,
                         rt: RuntimeDep, amount: Annotated[str, Form(max_length=32)] = "",
                         idempotency_key: Annotated[str, Form(max_length=255)] = "") -> Response:
    """``POST /publishers/{slug}/payouts``: the form carries its own idempotency key, so a
    second click or a reload answers with the first result instead of a second payout."""
    try:
        problems: list[dict[str, Any]] = []
        minor = _money(amount, "amount", problems)
        if problems or not minor:
            raise ValidationFailed("Give an amount like 25.00.", errors=problems or [
                {"loc": ["form", "amount"], "msg": "More than 0", "type": "value_error"}])
        key = idempotency.validate_key(idempotency_key or None, required=True)
        assert key is not None
        request.state.idempotency_claim = await idempotency.claim(
            rt.db, owner=f"user:{actor.user_id}", key=key,
            request_hash=idempotency.fingerprint("POST", request.url.path, f"amount={minor}".encode()),
            retention=timedelta(hours=rt.settings.idempotency_retention_hours),
            lease=timedelta(seconds=rt.settings.idempotency_lease_seconds))
        body = PayoutCreate(amount=minor)
        publisher = await earnings.publisher_for(session, actor=actor, slug=slug, permission=Permission.payout_request)
        await earnings.request_payout(session, actor=actor, publisher=publisher, amount=body.amount,
                                      currency=rt.settings.currency)
    except MercatoError as error:
        await discard(session)
        async with rt.db.read_session() as reader:
            context = await _earnings_context(reader, actor, slug, rt.settings.currency)
        return await refused(request, error, "console/publisher/earnings.html",
                             {**context, "currency": rt.settings.currency, "values": {"amount": amount}})
    return redirect(str(request.url_for("console_publisher_earnings", slug=slug)) + "?requested=1")


# --- coupons --------------------------------------------------------------------------------------

CouponManager = Annotated[Principal, console_actor(Permission.coupon_manage)]
COUPON_FIELDS = ("code", "kind", "value", "listing", "starts_on", "ends_on", "max_redemptions", "per_user_limit")


async def _coupons_context(session: AsyncSession, actor: Principal, slug: str) -> dict[str, Any]:
    publisher = await _publisher(session, actor, slug, Permission.coupon_manage)
    coupons, _ = await coupon_service.search(session, actor=actor, publisher=slug, active=None, after=None, limit=100,
                                             with_total=False)
    own = await catalog.of_publisher(session, actor, publisher, after=None, limit=100)
    return {"publisher": publisher, "coupons": coupons, "listings": own, "names": {row.id: row.name for row in own},
            "values": {"kind": "percent"}, "console": "publisher", "section": "coupons"}


@router.get("/coupons", name="console_publisher_coupons")
async def coupons_page(slug: str, request: Request, session: ReadSession, actor: CouponManager) -> Response:
    return await render(request, "console/publisher/coupons.html", await _coupons_context(session, actor, slug))


def _coupon_body(form: FormData, slug: str) -> dict[str, Any]:
    values = {name: str(form.get(name, "")).strip() for name in COUPON_FIELDS}
    problems: list[dict[str, Any]] = []
    body: dict[str, Any] = {"code": values["code"], "kind": values["kind"]}
    if values["kind"] == "fixed":
        body["value"] = _money(values["value"], "value", problems)
    else:
        body["value"] = int(values["value"]) if values["value"].isdigit() else values["value"]
    if values["listing"]:
        body.update(scope="listing", listing_id=values["listing"])
    else:
        body.update(scope="publisher", publisher=slug)
    for name, field in (("starts_on", "starts_at"), ("ends_on", "ends_at")):
        if values[name]:
            body[field] = f"{values[name]}T00:00:00Z"
    for name in ("max_redemptions", "per_user_limit"):
        if values[name]:
            body[name] = values[name]
    if problems:
        raise ValidationFailed("Check the highlighted fields.", errors=problems)
    return body


@router.post("/coupons", name="console_publisher_create_coupon")
async def create_coupon(slug: str, request: Request, session: WriteSession, actor: CouponManager,
                        rt: RuntimeDep) -> Response:
    """``POST /coupons`` for this publisher (all its listings) or one of its listings."""
    form = await request.form()
    try:
        await _publisher(session, actor, slug, Permission.coupon_manage)
        try:
            body = CouponCreate.model_validate(_coupon_body(form, slug))
        except ValidationError as exc:
            raise _invalid(exc) from None
        await coupon_service.create(session, actor=actor, code=body.code, kind=body.kind, value=body.value,
                                    scope=body.scope, publisher=body.publisher, listing_id=body.listing_id,
                                    starts_at=body.starts_at, ends_at=body.ends_at,
                                    max_redemptions=body.max_redemptions, per_user_limit=body.per_user_limit,
                                    active=body.active, currency=rt.settings.currency)
    except MercatoError as error:
        await discard(session)
        async with rt.db.read_session() as reader:
            context = await _coupons_context(reader, actor, slug)
        return await refused(request, error, "console/publisher/coupons.html", {
            **context, "values": {name: str(form.get(name, "")) for name in COUPON_FIELDS}})
    return redirect(str(request.url_for("console_publisher_coupons", slug=slug)))


# --- members --------------------------------------------------------------------------------------

MemberManager = Annotated[Principal, console_actor(Permission.publisher_member_manage)]


async def _members_context(session: AsyncSession, actor: Principal, slug: str) -> dict[str, Any]:
    publisher = await _publisher(session, actor, slug, Permission.publisher_member_manage)
    return {"publisher": publisher, "members": await publishers.members(session, publisher), "values": {},
            "console": "publisher", "section": "members"}


@router.get("/members", name="console_publisher_members")
async def members_page(slug: str, request: Request, session: ReadSession, actor: MemberManager) -> Response:
    return await render(request, "console/publisher/members.html", await _members_context(session, actor, slug))


@router.post("/members", name="console_publisher_members_change")
async def change_members(slug: str, request: Request, session: WriteSession, actor: MemberManager, rt: RuntimeDep,
                         email: Annotated[str, Form(max_length=320)] = "",
                         role: Annotated[Literal["owner", "member", "remove"], Form()] = "member") -> Response:
    """Owners (and admins) add a member, change a role or remove someone (the API's member routes)."""
    try:
        if role == "remove":
            await publishers.remove_member(session, actor=actor, slug=slug, email=email.strip())
        else:
            try:
                body = MemberAdd.model_validate({"email": email.strip(), "role": role})
            except ValidationError as exc:
                raise _invalid(exc) from None
            await publishers.add_member(session, actor=actor, slug=slug, email=str(body.email), role=body.role)
    except MercatoError as error:
        await discard(session)
        async with rt.db.read_session() as reader:
            context = await _members_context(reader, actor, slug)
        return await refused(request, error, "console/publisher/members.html",
                             {**context, "values": {"email": email, "role": role}})
    return redirect(str(request.url_for("console_publisher_members", slug=slug)))
