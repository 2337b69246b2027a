"""The publisher console's licence key pools (U2): keys uploaded for a listing from its page, through
the service and permission of ``POST /listings/{id}/keys`` (``licence_key:manage``: members and admins)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from pydantic import ValidationError
from starlette.responses import Response

from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.catalog import service as catalog
from mercato.catalog.errors import ListingNotFound
from mercato.kit.errors import MercatoError, ValidationFailed
from mercato.licences import service as licences
from mercato.licences.schemas import MAX_KEYS_PER_UPLOAD, KeyUpload
from mercato.platform.routing import WriteSession, get_runtime
from mercato.publishers import service as publishers
from mercato.web.console.access import console_actor, discard, refused
from mercato.web.console.publisher.common import PREFIX, publisher_for
from mercato.web.console.publisher.listings import listing_context
from mercato.web.pages import page_router, redirect

router = page_router(prefix=PREFIX)

KeyManager = Annotated[Principal, console_actor(Permission.licence_key_manage)]


@router.post("/listings/{listing_id}/keys", name="console_publisher_upload_keys")
async def upload_keys(slug: str, listing_id: str, request: Request, session: WriteSession, actor: KeyManager,
                      keys: Annotated[str, Form(max_length=MAX_KEYS_PER_UPLOAD * 502)] = "") -> Response:
    """``POST /listings/{id}/keys``: one key a line; keys the pool has are skipped and counted."""
    try:
        publisher = await publisher_for(session, actor, slug, Permission.licence_key_manage)
        listing = await licences.listing_for_keys(session, actor=actor, key=listing_id)
        if listing.publisher_id != publisher.id:
            raise ListingNotFound(f"{publisher.slug} has no listing {listing_id!r}.")
        try:
            body = KeyUpload.model_validate({"keys": [line for line in keys.splitlines() if line.strip()]})
        except ValidationError as exc:
            raise ValidationFailed("Check the keys.", errors=[
                {"loc": ["form", "keys"], "msg": str(e["msg"]).removeprefix("Value error, "), "type": e["type"]}
                for e in exc.errors()]) from None
        result = await licences.upload_keys(session, actor=actor, listing=listing, keys=body.keys)
    except MercatoError as error:
        await discard(session)
        async with get_runtime(request).db.read_session() as reader:
            publisher = await publishers.get(reader, slug)

            listing = await catalog.get_visible(reader, actor, listing_id)
            context = await listing_context(reader, actor, publisher, listing)
        return await refused(request, error, "console/publisher/listing.html",
                             {**context, "key_values": {"keys": keys}})
    return redirect(str(request.url_for("console_publisher_listing", slug=slug, listing_id=listing_id))
                    + f"?keys_added={result.added}&keys_skipped={result.skipped}#keys")
