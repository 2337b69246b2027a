"""The publisher console's versions of a listing (U2): upload with a progress bar, submit, appeal
a rejection and yank, through the release and moderation services and their permissions
(``version:upload|submit|yank``, ``review_appeal:create``); the checks' findings, risk score and
review decision show on the listing page (:mod:`.listings`)."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import File, Form, Request, UploadFile
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.kit.errors import MercatoError, ValidationFailed
from mercato.moderation import service as review
from mercato.platform.routing import RuntimeDep, WriteSession
from mercato.releases import service as publishing
from mercato.releases.ingest import ingest, spool
from mercato.releases.schemas import SubmitBody, YankBody
from mercato.web.console.access import console_actor
from mercato.web.console.publisher.common import PREFIX, listing_of, publisher_for
from mercato.web.console.publisher.listings import refused_on_listing
from mercato.web.pages import page_router, redirect

router = page_router(prefix=PREFIX)

Uploader = Annotated[Principal, console_actor(Permission.version_upload)]
Submitter = Annotated[Principal, console_actor(Permission.version_submit)]
Yanker = Annotated[Principal, console_actor(Permission.version_yank)]
Appellant = Annotated[Principal, console_actor(Permission.review_appeal_create)]


@router.post("/listings/{listing_id}/versions", name="console_publisher_upload")
async def upload(slug: str, listing_id: str, request: Request, session: WriteSession, actor: Uploader,
                 rt: RuntimeDep, file: Annotated[UploadFile, File()]) -> Response:
    """The API's upload (``POST /listings/{id}/versions``): inspected without unpacking, checked,
    stored by its SHA-256, recorded as ``uploaded``. The browser shows the bytes sent as they go."""
    try:
        async with rt.db.read_session() as check_session:
            publisher = await publisher_for(check_session, actor, slug, Permission.version_upload)
            listing = await listing_of(check_session, actor, publisher, listing_id, Permission.version_upload)
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
        return await refused_on_listing(request, session, actor, slug, listing_id, error)
    return redirect(str(request.url_for("console_publisher_listing", slug=slug, listing_id=listing_id))
                    + f"?uploaded={version.version}#v-{version.version}")


@router.post("/listings/{listing_id}/versions/{version}/submit", name="console_publisher_submit")
async def submit(slug: str, listing_id: str, version: str, request: Request, session: WriteSession,
                 actor: Submitter, note: Annotated[str, Form(max_length=2000)] = "",
                 security_update: Annotated[bool, Form()] = False) -> Response:
    try:
        publisher = await publisher_for(session, actor, slug, Permission.version_submit)
        listing = await listing_of(session, actor, publisher, listing_id, Permission.version_submit)
        body = SubmitBody(note=note, security_update=security_update)
        await review.submit(session, actor=actor, key=str(listing.id), version=version,
                            security_update=body.security_update, note=body.note)
    except MercatoError as error:
        return await refused_on_listing(request, session, actor, slug, listing_id, error)
    return redirect(str(request.url_for("console_publisher_listing", slug=slug, listing_id=listing_id))
                    + f"#v-{version}")


async def version_action(slug: str, listing_id: str, version: str, action: str, request: Request,
                         session: AsyncSession, actor: Principal, reason: str) -> Response:
    """Appeal a rejection (``review_appeal:create``) or yank an approved version (``version:yank``)."""
    permission = Permission.review_appeal_create if action == "appeal" else Permission.version_yank
    try:
        publisher = await publisher_for(session, actor, slug, permission)
        listing = await listing_of(session, actor, publisher, listing_id, permission)
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
        return await refused_on_listing(request, session, actor, slug, listing_id, error)
    return redirect(str(request.url_for("console_publisher_listing", slug=slug, listing_id=listing_id))
                    + f"#v-{version}")


@router.post("/listings/{listing_id}/versions/{version}/appeal", name="console_publisher_appeal")
async def appeal(slug: str, listing_id: str, version: str, request: Request, session: WriteSession,
                 actor: Appellant, reason: Annotated[str, Form(max_length=2000)] = "") -> Response:
    return await version_action(slug, listing_id, version, "appeal", request, session, actor, reason)


@router.post("/listings/{listing_id}/versions/{version}/yank", name="console_publisher_yank")
async def yank(slug: str, listing_id: str, version: str, request: Request, session: WriteSession,
               actor: Yanker, reason: Annotated[str, Form(max_length=2000)] = "") -> Response:
    return await version_action(slug, listing_id, version, "yank", request, session, actor, reason)
