"""Key pools (M12) and signed licence documents (L1).

A publisher uploads licence keys for a listing; the order saga hands one out per order
line with :func:`assign_key`. A key handed out stays with its buyer for good, even after
a refund: the buyer may already have used it, so giving it to someone else could leave
two people with one key. There is deliberately no ``release_key``.

A licence document is the buyer's proof of entitlement, signed with the store's Ed25519
key so that anyone verifies it offline against ``GET /keys`` (see ``docs/licences.md``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.permissions import Condition, Permission
from mercato.access.principal import Principal
from mercato.audit.actions import AuditAction
from mercato.audit.service import record as audit
from mercato.catalog import service as catalog
from mercato.catalog.errors import ListingNotFound
from mercato.kit.clock import utcnow
from mercato.kit.keys import StoreKeys
from mercato.library import service as library
from mercato.licences import repository
from mercato.licences.errors import KeyPoolEmpty, LicenceNotFound, OrderLineNotFound
from mercato.models import LicenceKey, Listing
from mercato.orders import service as orders
from mercato.publishers import service as publishers


@dataclass(frozen=True)
class PoolCounts:
    total: int
    free: int

    @property
    def assigned(self) -> int:
        return self.total - self.free


@dataclass(frozen=True)
class UploadResult:
    added: int
    skipped: int
    pool: PoolCounts


# --- who manages a pool ---------------------------------------------------------------------------

async def listing_for_keys(session: AsyncSession, *, actor: Principal, key: str) -> Listing:
    """The listing (by id or slug) if the actor manages its keys: an admin (``any``) or a
    member of its publisher (``own``). Anyone else gets 404, as if it did not exist: a
    pool's size is the publisher's business, even for a published listing."""
    listing = await catalog.get_visible(session, actor, key)
    condition = actor.condition_for(Permission.licence_key_manage, listing.slug)
    if condition is Condition.any:
        return listing
    if condition is Condition.own and await publishers.member_role(session, listing.publisher_id, actor.user_id):
        return listing
    raise ListingNotFound(f"There is no listing {key!r}.")


async def pool(session: AsyncSession, *, listing_id: uuid.UUID) -> PoolCounts:
    total, free = await repository.counts(session, listing_id)
    return PoolCounts(total=total, free=free)


async def upload_keys(session: AsyncSession, *, actor: Principal, listing: Listing, keys: list[str]) -> UploadResult:
    """Add keys to the listing's pool, audited (the count, never the keys). Repeats within
    the upload and keys the pool already has are skipped and counted."""
    unique = list(dict.fromkeys(keys))
    added = await repository.add_keys(session, listing.id, unique, at=utcnow())
    counts = await pool(session, listing_id=listing.id)
    result = UploadResult(added=added, skipped=len(keys) - added, pool=counts)
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.licence_key_upload,
                resource_type="listing", resource_id=listing.id,
                after={"listing_slug": listing.slug, "submitted": len(keys), "added": added,
                       "skipped": result.skipped, "free": counts.free, "total": counts.total})
    return result


# --- handing keys out (called by the order saga) ------------------------------------------------

async def assign_key(session: AsyncSession, *, listing_id: uuid.UUID, order_line_id: uuid.UUID) -> LicenceKey | None:
    """Hand one free key of the listing's pool to the order line, in the caller's transaction.

    None when the listing has no key pool (no key was ever uploaded). The same order line
    always gets the same key (a repeated call returns it). Raises :class:`KeyPoolEmpty`
    when the pool has keys but none is free, changing nothing. Concurrent callers never
    get the same key. ``order_lines.licence_key_id`` is set to the key.
    """
    held = await repository.of_order_line(session, order_line_id)
    if held is not None:
        return held
    if not await repository.has_pool(session, listing_id):
        return None
    line_listing = await orders.listing_of_line(session, order_line_id)
    if line_listing != listing_id:
        raise OrderLineNotFound(f"There is no order line {order_line_id} for listing {listing_id}.")
    while True:
        key_id = await repository.free_key_id(session, listing_id, skip_locked=True)
        if key_id is None:
            # Every free key may be locked by buyers still in flight; wait for them, since
            # one that rolls back leaves its key free.
            key_id = await repository.free_key_id(session, listing_id, skip_locked=False)
        if key_id is None:
            raise KeyPoolEmpty(f"Every licence key of listing {listing_id} has been handed out.")
        if await repository.take(session, key_id, order_line_id=order_line_id, at=utcnow()):
            await orders.link_licence_key(session, order_line_id, key_id)
            taken = await repository.of_order_line(session, order_line_id)
            if taken is None:  # just taken in this very transaction
                raise RuntimeError(f"licence key {key_id} vanished after being taken")
            return taken
        # Lost a race: the key went to someone else, or this line got one meanwhile.
        held = await repository.of_order_line(session, order_line_id)
        if held is not None:
            await orders.link_licence_key(session, order_line_id, held.id)
            return held


# --- licence documents ------------------------------------------------------------------------

def _timestamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def licence_document(session: AsyncSession, *, keys: StoreKeys, user_id: uuid.UUID,
                           listing_id: uuid.UUID) -> dict[str, Any]:
    """The signed licence of the user's active entitlement to the listing.

    Stable across requests (``issued_at`` is the grant time), so a client may cache it.
    Raises :class:`LicenceNotFound` when the listing is unknown or the user holds no
    active entitlement (never granted, or revoked by a refund)."""
    entitlement = await library.entitlement_of(session, user_id=user_id, listing_id=listing_id)
    if entitlement is None or entitlement.revoked_at is not None:
        raise LicenceNotFound(f"You hold no licence for listing {listing_id}.")
    listing = await catalog.get_by_id(session, listing_id)
    key = (await repository.key_of_order(session, entitlement.order_id, listing_id)
           if entitlement.order_id is not None else None)
    return keys.sign_document({"licence": {
        "id": str(entitlement.id), "listing_id": str(listing.id), "listing_slug": listing.slug,
        "user_id": str(entitlement.user_id),
        "order_id": str(entitlement.order_id) if entitlement.order_id is not None else None,
        "issued_at": _timestamp(entitlement.granted_at), "expires_at": None, "key": key}})
