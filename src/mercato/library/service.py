"""Libraries (L1/L2): what each user is entitled to download and install.

An entitlement comes from a purchase (the order saga), a free "get" (the first download
of a free listing) or an admin grant; refunds and admins revoke it. Grants and revokes
are events (``entitlement.granted`` / ``entitlement.revoked``) written in the caller's
transaction, and only when they changed something.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

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
from mercato.library import repository
from mercato.library.errors import EntitlementAlreadyRevoked, EntitlementNotFound
from mercato.library.events import EntitlementGranted, EntitlementRevoked
from mercato.licences import service as licences
from mercato.licences.errors import KeyPoolEmpty
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


# --- purchases (the order saga's grant) ---------------------------------------------------------------

@dataclass(frozen=True)
class OrderLineToGrant:
    line_id: uuid.UUID
    listing_id: uuid.UUID
    delivery: str  # digital | physical


@dataclass(frozen=True)
class GrantRefused:
    reason: str   # already_owned | licence_keys_exhausted
    detail: str


class _PoolEmpty(Exception):
    def __init__(self, detail: str) -> None:
        self.detail = detail


async def grant_order(session: AsyncSession, *, order_id: uuid.UUID, user_id: uuid.UUID,
                      lines: Sequence[OrderLineToGrant]) -> GrantRefused | None:
    """Entitle the buyer to every line's listing (source ``purchase``), or to none.

    Refused (nothing granted, no key taken) when the buyer already holds a digital line's
    listing (bought twice by two orders in flight at once) or a listing's key pool has no
    key left. A physical line of a listing the buyer holds already is fine: the copy was
    shipped; the existing entitlement stays. When no entitlement was new, the existing one
    is announced again for the order (``entitlement.granted`` with its ``order_id``), so the
    order always learns the outcome.
    """
    held = {line.listing_id for line in lines
            if await repository.is_active(session, user_id, line.listing_id)}
    for line in lines:
        if line.delivery == "digital" and line.listing_id in held:
            return GrantRefused("already_owned", f"The buyer already owns listing {line.listing_id}.")
    try:
        async with session.begin_nested():  # a pool running dry gives back the keys taken so far
            for line in lines:
                try:
                    await licences.assign_key(session, listing_id=line.listing_id, order_line_id=line.line_id)
                except KeyPoolEmpty as exc:
                    raise _PoolEmpty(exc.detail) from None
            for line in lines:
                await grant(session, user_id=user_id, listing_id=line.listing_id, source="purchase",
                                    order_id=order_id)
    except _PoolEmpty as empty:
        return GrantRefused("licence_keys_exhausted", empty.detail)
    if all(line.listing_id in held for line in lines):
        existing = await repository.of_user(session, user_id, lines[0].listing_id)
        if existing is not None:
            await publish(session, CloudEvent.of(EntitlementGranted(
                entitlement_id=existing.id, user_id=user_id, listing_id=existing.listing_id, source=existing.source,
                order_id=order_id), subject=str(existing.id)))
    return None
