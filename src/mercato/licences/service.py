"""Key pools (M12).

A publisher uploads licence keys for a listing; the order saga hands one out per order
line (``orders.grant.assign_key``, which takes it with :func:`take_key`). A key handed
out stays with its buyer for good, even after a refund: the buyer may already have used
it, so giving it to someone else could leave two people with one key. There is
deliberately no ``release_key``.

The signed licence document that shows a buyer's key is the library's
(``library.service.licence_document``): it is the proof of an entitlement.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.permissions import Condition, Permission
from mercato.access.principal import Principal
from mercato.audit.actions import AuditAction
from mercato.audit.service import record as audit
from mercato.catalog import service as catalog
from mercato.catalog.errors import ListingNotFound
from mercato.kit.clock import utcnow
from mercato.licences import repository
from mercato.licences.errors import KeyPoolEmpty
from mercato.models import LicenceKey, Listing
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


# --- handing keys out (the order saga, orders.grant.assign_key) ------------------------------

async def has_pool(session: AsyncSession, listing_id: uuid.UUID) -> bool:
    """Whether the listing has a key pool (a key was ever uploaded)."""
    return await repository.has_pool(session, listing_id)


async def key_of_line(session: AsyncSession, order_line_id: uuid.UUID) -> LicenceKey | None:
    """The key handed out to the order line, if any."""
    return await repository.of_order_line(session, order_line_id)


async def key_of_order(session: AsyncSession, order_id: uuid.UUID, listing_id: uuid.UUID) -> str | None:
    """The key handed out with the order for the listing (what its licence document shows)."""
    return await repository.key_of_order(session, order_id, listing_id)


async def take_key(session: AsyncSession, *, listing_id: uuid.UUID, order_line_id: uuid.UUID) -> LicenceKey:
    """Take one free key of the listing's pool for the order line, in the caller's transaction,
    and return the key the line then holds (another call may have given it one meanwhile).

    Raises :class:`KeyPoolEmpty` when every key has been handed out, changing nothing.
    Concurrent callers never get the same key."""
    while True:
        key_id = await repository.free_key_id(session, listing_id, skip_locked=True)
        if key_id is None:
            # Every free key may be locked by buyers still in flight; wait for them, since
            # one that rolls back leaves its key free.
            key_id = await repository.free_key_id(session, listing_id, skip_locked=False)
        if key_id is None:
            raise KeyPoolEmpty(f"Every licence key of listing {listing_id} has been handed out.")
        if await repository.take(session, key_id, order_line_id=order_line_id, at=utcnow()):
            taken = await repository.of_order_line(session, order_line_id)
            if taken is None:  # just taken in this very transaction
                raise RuntimeError(f"licence key {key_id} vanished after being taken")
            return taken
        # Lost a race: the key went to someone else, or this line got one meanwhile.
        held = await repository.of_order_line(session, order_line_id)
        if held is not None:
            return held
