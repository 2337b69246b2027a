"""Libraries (L1/L2): what each user is entitled to download and install.

An entitlement comes from a purchase (the order saga), a free "get" (the first download
of a free listing) or an admin grant; refunds and admins revoke it. Grants and revokes
are events (``entitlement.granted`` / ``entitlement.revoked``) written in the caller's
transaction, and only when they changed something.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.principal import Principal
from mercato.accounts import service as accounts
from mercato.audit.actions import AuditAction
from mercato.audit.service import record as audit
from mercato.bus.events import CloudEvent
from mercato.bus.outbox import publish
from mercato.catalog import service as catalog
from mercato.kit.clock import utcnow
from mercato.kit.errors import found_or_raise
from mercato.kit.keys import StoreKeys
from mercato.library import repository
from mercato.library.errors import EntitlementAlreadyRevoked, EntitlementNotFound
from mercato.library.events import EntitlementGranted, EntitlementRevoked
from mercato.licences import service as licences
from mercato.licences.errors import LicenceNotFound
from mercato.models import Entitlement, Listing

SOURCES = ("purchase", "free", "admin")


async def is_entitled(session: AsyncSession, *, user_id: uuid.UUID, listing_id: uuid.UUID) -> bool:
    """Whether the user holds an active (not revoked) entitlement to the listing."""
    return await repository.is_active(session, user_id, listing_id)


async def entitlement_of(session: AsyncSession, *, user_id: uuid.UUID, listing_id: uuid.UUID) -> Entitlement | None:
    """The user's entitlement to the listing, active or revoked (``revoked_at`` tells), as it
    is in the database now; None when it was never granted."""
    return await repository.of_user(session, user_id, listing_id)


async def grant(session: AsyncSession, *, user_id: uuid.UUID, listing_id: uuid.UUID, source: str,
                order_id: uuid.UUID | None = None, granted_by: uuid.UUID | None = None) -> Entitlement:
    """Entitle the user to the listing: a new row, or the revoked one re-activated. An
    entitlement that is already active is left as it is (and no event is written), so
    concurrent or repeated grants end in one row and one ``entitlement.granted``."""
    entitlement, _ = await _grant(session, user_id=user_id, listing_id=listing_id, source=source,
                                  order_id=order_id, granted_by=granted_by)
    return entitlement


async def _grant(session: AsyncSession, *, user_id: uuid.UUID, listing_id: uuid.UUID, source: str,
                 order_id: uuid.UUID | None, granted_by: uuid.UUID | None) -> tuple[Entitlement, bool]:
    if source not in SOURCES:
        raise ValueError(f"unknown entitlement source {source!r}")
    changed = await repository.grant(session, user_id=user_id, listing_id=listing_id, source=source,
                                     order_id=order_id, granted_by=granted_by, at=utcnow())
    entitlement = await repository.of_user(session, user_id, listing_id)
    if entitlement is None:  # the statement above inserted or found it, in this transaction
        raise RuntimeError(f"entitlement of {user_id} to {listing_id} vanished")
    if changed is not None:
        await publish(session, CloudEvent.of(EntitlementGranted(
            entitlement_id=entitlement.id, user_id=user_id, listing_id=listing_id, source=source, order_id=order_id),
            subject=str(entitlement.id)))
    return entitlement, changed is not None


async def revoke(session: AsyncSession, *, user_id: uuid.UUID, listing_id: uuid.UUID, reason: str) -> bool:
    """Revoke the user's active entitlement (a refund, an admin). False when there was none."""
    entitlement = await repository.of_user(session, user_id, listing_id)
    if entitlement is None:
        return False
    return await _revoke(session, entitlement, reason=reason)


async def _revoke(session: AsyncSession, entitlement: Entitlement, *, reason: str) -> bool:
    if not await repository.revoke(session, entitlement.id, reason=reason, at=utcnow()):
        return False
    await session.refresh(entitlement)
    await publish(session, CloudEvent.of(EntitlementRevoked(
        entitlement_id=entitlement.id, user_id=entitlement.user_id, listing_id=entitlement.listing_id, reason=reason),
        subject=str(entitlement.id)))
    return True


async def entitle_for_download(session: AsyncSession, *, user_id: uuid.UUID, listing: Listing,
                               count: bool = True) -> bool:
    """May the user download the listing's artifacts? Counts the download when they may.

    An active entitlement: its download count goes up by one (the refund policy reads it).
    Otherwise a free, published listing is "got" on its first download (source ``free``).
    Anything else: False (the caller answers 403). ``count=False`` checks (and gets a free
    listing) without counting: for a resumed range request or a 304 revalidation.
    """
    if count and await repository.count_download(session, user_id, listing.id):
        return True
    if not count and await repository.is_active(session, user_id, listing.id):
        return True
    if listing.sort_price != 0 or listing.status != "published":
        return False
    await grant(session, user_id=user_id, listing_id=listing.id, source="free")
    return await repository.count_download(session, user_id, listing.id) if count else True


async def count_download(session: AsyncSession, *, user_id: uuid.UUID, listing_id: uuid.UUID) -> None:
    """One more download on the user's active entitlement, if they have one (the refund policy reads it).

    Call it for every answer that hands out bytes of an archive: a download through the API
    (whatever its conditional or range headers) and an install agent's fetch for the user.
    """
    await repository.count_download(session, user_id, listing_id)


async def library_of(session: AsyncSession, user_id: uuid.UUID, after: tuple[datetime, uuid.UUID] | None,
                     limit: int) -> list[Entitlement]:
    """The user's active entitlements, newest first."""
    return await repository.active_of(session, user_id, after=after, limit=limit)


# --- administration (L2) -------------------------------------------------------------------------

async def admin_grant(session: AsyncSession, *, actor: Principal, user_id: uuid.UUID, listing_id: uuid.UUID,
                      reason: str | None) -> tuple[Entitlement, bool]:
    """An admin entitles a user (source ``admin``), audited. Returns the entitlement and
    whether it changed (False: the user already held an active one, which stays as it was)."""
    user = await accounts.get_user(session, user_id)
    listing = await catalog.get_by_id(session, listing_id)
    before = await repository.of_user(session, user.id, listing.id)
    before_state = None if before is None else {"source": before.source, "revoked": before.revoked_at is not None}
    entitlement, changed = await _grant(session, user_id=user.id, listing_id=listing.id, source="admin",
                                        order_id=None, granted_by=actor.user_id)
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.entitlement_grant,
                resource_type="entitlement", resource_id=entitlement.id, before=before_state,
                after={"user_id": user.id, "listing_id": listing.id, "source": entitlement.source,
                       "reason": reason, "changed": changed})
    return entitlement, changed


async def admin_revoke(session: AsyncSession, *, actor: Principal, entitlement_id: uuid.UUID,
                       reason: str | None) -> Entitlement:
    entitlement = found_or_raise(await repository.by_id(session, entitlement_id),
                                 EntitlementNotFound, f"There is no entitlement {entitlement_id}.")
    if entitlement.revoked_at is not None:
        raise EntitlementAlreadyRevoked(f"The entitlement was revoked on {entitlement.revoked_at:%Y-%m-%d %H:%M} UTC.")
    reason = reason or "Revoked by an admin"
    if not await _revoke(session, entitlement, reason=reason):
        raise EntitlementAlreadyRevoked("The entitlement was revoked by someone else meanwhile.")
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.entitlement_revoke,
                resource_type="entitlement", resource_id=entitlement.id,
                before={"user_id": entitlement.user_id, "listing_id": entitlement.listing_id,
                        "source": entitlement.source, "revoked": False},
                after={"revoked": True, "reason": reason})
    return entitlement


async def search(session: AsyncSession, *, user_id: uuid.UUID | None, listing_id: uuid.UUID | None,
                 active: bool | None, after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[Entitlement]:
    return await repository.search(session, user_id=user_id, listing_ids=[listing_id] if listing_id else None,
                                   active=active, after=after, limit=limit)


# --- purchases (the order saga's grant, orders.grant.grant_order) --------------------------

async def announce_for_order(session: AsyncSession, *, user_id: uuid.UUID, listing_id: uuid.UUID,
                             order_id: uuid.UUID) -> None:
    """Announce the user's existing entitlement again for an order that entitled them to
    nothing new (``entitlement.granted`` with its ``order_id``), so the order learns the outcome."""
    existing = await repository.of_user(session, user_id, listing_id)
    if existing is not None:
        await publish(session, CloudEvent.of(EntitlementGranted(
            entitlement_id=existing.id, user_id=user_id, listing_id=existing.listing_id, source=existing.source,
            order_id=order_id), subject=str(existing.id)))


# --- licence documents (L1) ---------------------------------------------------------------------
# A licence document is the buyer's proof of entitlement, signed with the store's Ed25519 key
# so that anyone verifies it offline against ``GET /keys`` (see ``docs/licences.md``).

def _timestamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def licence_document(session: AsyncSession, *, keys: StoreKeys, user_id: uuid.UUID,
                           listing_id: uuid.UUID) -> dict[str, Any]:
    """The signed licence of the user's active entitlement to the listing.

    Stable across requests (``issued_at`` is the grant time), so a client may cache it.
    Raises :class:`LicenceNotFound` when the listing is unknown or the user holds no
    active entitlement (never granted, or revoked by a refund)."""
    entitlement = await repository.of_user(session, user_id, listing_id)
    if entitlement is None or entitlement.revoked_at is not None:
        raise LicenceNotFound(f"You hold no licence for listing {listing_id}.")
    listing = await catalog.get_by_id(session, listing_id)
    key = (await licences.key_of_order(session, entitlement.order_id, listing_id)
           if entitlement.order_id is not None else None)
    return keys.sign_document({"licence": {
        "id": str(entitlement.id), "listing_id": str(listing.id), "listing_slug": listing.slug,
        "user_id": str(entitlement.user_id),
        "order_id": str(entitlement.order_id) if entitlement.order_id is not None else None,
        "issued_at": _timestamp(entitlement.granted_at), "expires_at": None, "key": key}})
