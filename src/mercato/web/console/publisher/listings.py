"""The publisher console's listings (U2): create, edit with a Markdown preview, delist and relist,
through the catalog service and its permissions (``listing:create|update|delist``); the listing
page also shows its versions and key pool, whose actions live in :mod:`.versions` and :mod:`.licence_keys`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Form, Request
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.responses import HTMLResponse, Response

from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.catalog import service as catalog
from mercato.catalog.schemas import ListingCreate, ListingUpdate
from mercato.kit.errors import MercatoError, ValidationFailed
from mercato.kit.markdown import render_markdown
from mercato.licences import service as licences
from mercato.models import Listing, Publisher
from mercato.moderation import service as review
from mercato.platform.routing import ReadSession, RuntimeDep, WriteSession, get_runtime
from mercato.publishers import service as publishers
from mercato.releases import service as publishing
from mercato.web.console.access import console_actor, discard, refused
from mercato.web.console.publisher.common import PREFIX, form_invalid, listing_of, parse_money, publisher_for
from mercato.web.pages import page_router, redirect, render

router = page_router(prefix=PREFIX)

Editor = Annotated[Principal, console_actor(Permission.listing_update)]
Creator = Annotated[Principal, console_actor(Permission.listing_create)]
Delister = Annotated[Principal, console_actor(Permission.listing_delist)]

KINDS = ("app", "plugin", "game")
LISTING_FIELDS = ("slug", "name", "kind", "summary", "description", "category", "tags", "homepage", "license",
                  "icon_url", "screenshots", "digital_price", "physical_price", "stock")


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
    digital = parse_money(values["digital_price"], "digital_price", problems)
    physical = parse_money(values["physical_price"], "physical_price", problems)
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
    publisher = await publisher_for(session, actor, slug, Permission.listing_update)
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
            raise form_invalid(exc) from None
        listing = await catalog.create(session, actor=actor, fields=fields, currency=rt.settings.currency)
    except MercatoError as error:
        await discard(session)
        async with rt.db.read_session() as reader:
            context = await _listings_context(reader, actor, await publishers.get(reader, slug))
        return await refused(request, error, "console/publisher/listings.html", {
            **context, "values": {name: str(form.get(name, "")) for name in LISTING_FIELDS}})
    return redirect(str(request.url_for("console_publisher_listing", slug=slug, listing_id=listing.id)))


async def listing_context(session: AsyncSession, actor: Principal, publisher: Publisher,
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
    publisher = await publisher_for(session, actor, slug, Permission.listing_update)
    listing = await listing_of(session, actor, publisher, listing_id, Permission.listing_update)
    return await render(request, "console/publisher/listing.html", {
        **await listing_context(session, actor, publisher, listing), "uploaded": uploaded,
        "keys_added": keys_added, "keys_skipped": keys_skipped})


async def refused_on_listing(request: Request, session: AsyncSession, actor: Principal, slug: str, listing_id: str,
                              error: MercatoError, values: dict[str, Any] | None = None) -> Response:
    await discard(session)
    async with get_runtime(request).db.read_session() as reader:
        publisher = await publishers.get(reader, slug)
        listing = await catalog.get_visible(reader, actor, listing_id)
        context = await listing_context(reader, actor, publisher, listing)
    if values:
        context["values"] = {**context["values"], **values}
    return await refused(request, error, "console/publisher/listing.html", context)


@router.post("/listings/{listing_id}", name="console_publisher_update")
async def update_listing(slug: str, listing_id: str, request: Request, session: WriteSession, actor: Editor,
                         rt: RuntimeDep) -> Response:
    form = await request.form()
    try:
        publisher = await publisher_for(session, actor, slug, Permission.listing_update)
        listing = await listing_of(session, actor, publisher, listing_id, Permission.listing_update)
        body = listing_body(form, rt.settings.currency, new=False)
        try:
            changes = ListingUpdate.model_validate(body).model_dump(mode="json")
        except ValidationError as exc:
            raise form_invalid(exc) from None
        await catalog.update(session, actor=actor, key=str(listing.id), changes=changes,
                             currency=rt.settings.currency)
    except MercatoError as error:
        return await refused_on_listing(request, session, actor, slug, listing_id, error,
                                         {name: str(form.get(name, "")) for name in LISTING_FIELDS})
    return redirect(str(request.url_for("console_publisher_listing", slug=slug, listing_id=listing_id)) + "?saved=1")


@router.post("/preview", name="console_publisher_preview")
async def preview(slug: str, request: Request, session: ReadSession, actor: Editor,
                  description: Annotated[str, Form(max_length=50_000)] = "") -> Response:
    """The description as the listing page will show it (htmx swaps it in beside the field)."""
    await publisher_for(session, actor, slug, Permission.listing_update)
    html = render_markdown(description) or "<p class=\"muted\">Nothing to preview.</p>"
    return HTMLResponse(f'<div class="markdown">{html}</div>')


async def listing_action(slug: str, listing_id: str, action: str, request: Request, session: AsyncSession,
                         actor: Principal) -> Response:
    try:
        publisher = await publisher_for(session, actor, slug, Permission.listing_delist)
        listing = await listing_of(session, actor, publisher, listing_id, Permission.listing_delist)
        move = catalog.delist if action == "delist" else catalog.relist
        await move(session, actor=actor, key=str(listing.id))
    except MercatoError as error:
        return await refused_on_listing(request, session, actor, slug, listing_id, error)
    return redirect(str(request.url_for("console_publisher_listing", slug=slug, listing_id=listing_id)))


@router.post("/listings/{listing_id}/delist", name="console_publisher_delist")
async def delist(slug: str, listing_id: str, request: Request, session: WriteSession, actor: Delister) -> Response:
    return await listing_action(slug, listing_id, "delist", request, session, actor)


@router.post("/listings/{listing_id}/relist", name="console_publisher_relist")
async def relist(slug: str, listing_id: str, request: Request, session: WriteSession, actor: Delister) -> Response:
    return await listing_action(slug, listing_id, "relist", request, session, actor)
