"""The caller's library and signed licences (L1), and admin grants and revocations of entitlements (L2)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from mercato.access.dependencies import idempotent, requires
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.accounts.errors import UserNotFound
from mercato.catalog import service as catalog
from mercato.catalog.errors import ListingNotFound
from mercato.catalog.presenter import present
from mercato.kit.pagination import CursorParam, Limit, decode_cursor, encode_cursor, keyset_page
from mercato.kit.schemas import Page
from mercato.library import service
from mercato.library.errors import EntitlementAlreadyRevoked, EntitlementNotFound
from mercato.library.schemas import EntitlementGrant, EntitlementRead, LibraryItem, LibraryPage
from mercato.licences.errors import LicenceNotFound
from mercato.licences.schemas import LicenceDocument
from mercato.models import Entitlement
from mercato.platform.routing import ReadSession, RuntimeDep, TransactionalRoute, WriteSession

router = APIRouter(route_class=TransactionalRoute, tags=["library"])


def _granted_cursor(entitlement: Entitlement) -> str:
    """Entitlements are paged newest grant first."""
    return encode_cursor(entitlement.granted_at, entitlement.id)

EntitlementAdmin = Annotated[Principal, requires(Permission.entitlement_grant)]


@router.get("/library", response_model=LibraryPage)
async def my_library(actor: Annotated[Principal, requires(Permission.library_read)], session: ReadSession,
                     cursor: CursorParam = None, limit: Limit = 20) -> LibraryPage:
    """Everything you are entitled to (bought, got for free, granted by an admin), newest
    first, each with its listing as the catalog shows it. Revoked entitlements (refunds)
    are not listed. Listings that were delisted or suspended since stay in your library."""
    rows = await service.library_of(session, actor.user_id, decode_cursor(cursor), limit + 1)
    page, next_cursor = keyset_page(rows, limit, _granted_cursor)
    listings = [await catalog.get_by_id(session, entitlement.listing_id) for entitlement in page]
    shown = await present(session, listings)
    return LibraryPage(
        items=[LibraryItem(entitlement_id=e.id, source=e.source, granted_at=e.granted_at,  # type: ignore[arg-type]
                           order_id=e.order_id, download_count=e.download_count, listing=listing)
               for e, listing in zip(page, shown, strict=True)],
        next_cursor=next_cursor)


@router.get("/admin/entitlements", response_model=Page[EntitlementRead])
async def list_entitlements(actor: EntitlementAdmin, session: ReadSession, user_id: uuid.UUID | None = None,
                            listing_id: uuid.UUID | None = None,
                            active: Annotated[bool | None, Query(description="Only active (true) or revoked (false).")]
                            = None, cursor: CursorParam = None, limit: Limit = 20) -> Page[EntitlementRead]:
    """Entitlements of any user, newest grant first (to find the one to revoke)."""
    rows = await service.search(session, user_id=user_id, listing_id=listing_id, active=active,
                                after=decode_cursor(cursor), limit=limit + 1)
    page, next_cursor = keyset_page(rows, limit, _granted_cursor)
    return Page[EntitlementRead](items=[EntitlementRead.from_model(e) for e in page], next_cursor=next_cursor)


@router.post("/admin/entitlements", status_code=201, response_model=EntitlementRead,
             responses=UserNotFound.responses(ListingNotFound))
async def grant_entitlement(body: EntitlementGrant, actor: EntitlementAdmin,
                            _key: Annotated[str | None, idempotent(required=False)],
                            session: WriteSession) -> EntitlementRead:
    """Entitle a user to a listing (source `admin`), audited. A user who already holds an
    active entitlement keeps it unchanged (its source stays); a revoked one is re-activated.
    Accepts an `Idempotency-Key`."""
    entitlement, _ = await service.admin_grant(session, actor=actor, user_id=body.user_id,
                                               listing_id=body.listing_id, reason=body.reason)
    return EntitlementRead.from_model(entitlement)


@router.delete("/admin/entitlements/{entitlement_id}", response_model=EntitlementRead,
               responses=EntitlementNotFound.responses(EntitlementAlreadyRevoked))
async def revoke_entitlement(entitlement_id: uuid.UUID, actor: EntitlementAdmin, session: WriteSession,
                             reason: Annotated[str | None, Query(min_length=3, max_length=2000)] = None
                             ) -> EntitlementRead:
    """Revoke an entitlement, audited: the listing leaves the user's library (the row is
    kept, with its download count). Revoking it again answers 409 `invalid_transition`."""
    return EntitlementRead.from_model(
        await service.admin_revoke(session, actor=actor, entitlement_id=entitlement_id, reason=reason))


@router.get("/library/{listing_id}/license", response_model=LicenceDocument, responses=LicenceNotFound.responses())
async def my_licence(listing_id: uuid.UUID, actor: Annotated[Principal, requires(Permission.library_read)],
                     session: ReadSession, rt: RuntimeDep, response: Response) -> dict[str, Any]:
    """The signed licence of a listing you are entitled to (404 `not_entitled` otherwise,
    or once a refund revoked it), with the licence key handed out with your purchase.
    Verify it offline: `mercato licence verify FILE`, or see docs/licences.md. The
    document is the same on every request until the entitlement changes."""
    response.headers["Cache-Control"] = "private, no-store"  # it may carry a licence key
    return await service.licence_document(session, keys=rt.keys, user_id=actor.user_id, listing_id=listing_id)
