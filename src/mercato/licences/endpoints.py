"""Key pools of listings (M12); the caller's signed licences are the library's (library/endpoints.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from mercato.access.dependencies import requires
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.catalog.errors import ListingNotFound
from mercato.licences import service
from mercato.licences.schemas import (
    KeyPoolRead,
    KeyUpload,
    KeyUploadResult,
)
from mercato.platform.routing import (
    ReadSession,
    TransactionalRoute,
    WriteSession,
)

router = APIRouter(route_class=TransactionalRoute, tags=["licences"])

ListingKey = Annotated[str, Path(pattern=r"^[A-Za-z0-9-]{2,64}$", description="The listing's id or slug.")]
KeyManager = Annotated[Principal, requires(Permission.licence_key_manage)]


@router.post("/listings/{listing_id}/keys", status_code=201, response_model=KeyUploadResult,
             responses=ListingNotFound.responses())
async def upload_keys(listing_id: ListingKey, body: KeyUpload, actor: KeyManager,
                      session: WriteSession) -> KeyUploadResult:
    """Add licence keys to the listing's pool (members of its publisher, admins). Each
    buyer of the listing then gets one key per order line; an order finds the pool empty
    once every key is handed out. Keys the pool already has are skipped and counted;
    uploading the same batch again adds nothing. The answer carries counts, never keys."""
    listing = await service.listing_for_keys(session, actor=actor, key=listing_id)
    result = await service.upload_keys(session, actor=actor, listing=listing, keys=body.keys)
    return KeyUploadResult(added=result.added, skipped=result.skipped, free=result.pool.free,
                           assigned=result.pool.assigned)


@router.get("/listings/{listing_id}/keys", response_model=KeyPoolRead, responses=ListingNotFound.responses())
async def key_pool(listing_id: ListingKey, actor: KeyManager, session: ReadSession) -> KeyPoolRead:
    """How many keys the listing's pool holds and how many are still free. The keys
    themselves are never listed: a handed-out key belongs to its buyer, and the
    publisher keeps its own copy of the ones it uploaded."""
    listing = await service.listing_for_keys(session, actor=actor, key=listing_id)
    counts = await service.pool(session, listing_id=listing.id)
    return KeyPoolRead(listing_id=listing.id, total=counts.total, free=counts.free, assigned=counts.assigned)
