"""``/library`` (WEB.md; PRODUCT U1, L1, I1): everything the person owns, with its download,
its signed licence document and key, and an install on one of their instances."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import Request
from starlette.responses import Response

from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.catalog import service as catalog
from mercato.catalog.presenter import present as present_listings
from mercato.installs import service as installs
from mercato.installs.service import Scope
from mercato.kit.errors import MercatoError, NotFound
from mercato.kit.pagination import CursorParam, decode_cursor, encode_cursor, keyset_page
from mercato.library import service as library
from mercato.licences.errors import LicenceNotFound
from mercato.platform.routing import ReadSession, RuntimeDep, WriteSession
from mercato.releases.downloads import archive_response
from mercato.web import present  # noqa: F401 (the minor filter)
from mercato.web.pages import page_router, redirect, render
from mercato.web.permits import permitted

router = page_router()

LibraryReader = Annotated[Principal, permitted(Permission.library_read)]
Downloader = Annotated[Principal, permitted(Permission.version_download)]
Installer = Annotated[Principal, permitted(Permission.installation_manage)]


async def _context(session: Any, rt: Any, actor: Principal, cursor: str | None, **extra: Any) -> dict[str, Any]:
    rows = await library.library_of(session, actor.user_id, decode_cursor(cursor), 21)
    page, next_cursor = keyset_page(rows, 20, lambda e: encode_cursor(e.granted_at, e.id))
    listings = await present_listings(session, [await catalog.get_by_id(session, e.listing_id) for e in page])
    items = []
    for entitlement, listing in zip(page, listings, strict=True):
        try:
            document = await library.licence_document(session, keys=rt.keys, user_id=actor.user_id,
                                                      listing_id=listing.id)
            key = document["licence"].get("key")
        except LicenceNotFound:
            key = None
        items.append({"entitlement": entitlement, "listing": listing, "key": key})
    mine = (await installs.instances(session, scope=Scope(actor.user_id), after=None, limit=50)
            if actor.has(Permission.installation_manage) else [])
    return {"items": items, "instances": mine, "errors": {}, "error_for": None,
            "next_cursor": next_cursor, **extra}


@router.get("/library", name="library_page")
async def library_page(request: Request, actor: LibraryReader, session: ReadSession, rt: RuntimeDep,
                       cursor: CursorParam = None) -> Response:
    return await render(request, "buyer/library.html", await _context(session, rt, actor, cursor))


@router.get("/library/{listing_id}/download", name="library_download")
async def library_download(request: Request, listing_id: uuid.UUID, actor: Downloader, session: WriteSession,
                           rt: RuntimeDep, version: str | None = None) -> Response:
    """The archive of the latest approved version (or the one named), exactly as
    ``GET /api/v1/listings/{id}/versions/{version}/download`` answers it: entitled people only."""
    if version is None:
        listing = await catalog.get_by_id(session, listing_id)
        if not listing.latest_version:
            raise NotFound(f"{listing.name} has no version to download yet.")
        version = listing.latest_version
    return await archive_response(session, rt, request, actor=actor, key=str(listing_id), version=version)


@router.get("/library/{listing_id}/licence", name="library_licence")
async def library_licence(listing_id: uuid.UUID, actor: LibraryReader, session: ReadSession,
                          rt: RuntimeDep) -> Response:
    """The signed licence document (as ``GET /api/v1/library/{id}/license``), saved as a file."""
    document = await library.licence_document(session, keys=rt.keys, user_id=actor.user_id, listing_id=listing_id)
    slug = document["licence"]["listing_slug"]
    return Response(json.dumps(document, indent=2, sort_keys=True), media_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="licence-{slug}.json"', "Cache-Control": "private, no-store"})


@router.post("/library/{listing_id}/install", name="library_install")
async def library_install(request: Request, listing_id: uuid.UUID, actor: Installer, session: WriteSession,
                          rt: RuntimeDep) -> Response:
    """Install on one of the person's instances (as ``POST /api/v1/instances/{id}/installations``);
    the instance's page then shows the task's progress."""
    form = await request.form()
    raw = form.get("instance_id")
    try:
        instance_id = uuid.UUID(raw) if isinstance(raw, str) else None
    except ValueError:
        instance_id = None
    problem = "Choose one of your instances." if instance_id is None else None
    if instance_id is not None:
        try:
            task = await installs.install(session, actor=actor, settings=rt.settings, instance_id=instance_id,
                                          listing_id=listing_id, version=None, name=None, config=None,
                                          auto_upgrade=False)
        except MercatoError as exc:
            if session.in_transaction():
                await session.rollback()
            problem = exc.detail + "".join(f" {e.get('msg', '')}." for e in (exc.errors or []) if e.get("msg"))
            status = exc.status
        else:
            return redirect(f"/instances/{instance_id}?task={task.id}#task-{task.id}")
    else:
        status = 422
    async with rt.db.read_session() as reader:
        context = await _context(reader, rt, actor, None, errors={"instance_id": problem}, error_for=listing_id)
    return await render(request, "buyer/library.html", context, status_code=status)
