"""Market sources (O6): admins add another Mercato store by its base URL; its public catalog
is mirrored read-only (``sweep.py`` follows its sync feed). Removing a source removes its
mirrored listings with it, so they disappear from GET /market/listings at once.

URLs pass the SSRF guard (``kit/ssrf.py``) when added and again before every fetch; hosts in
``outbound_allowed_hosts`` are let through (a local test store, an in-cluster one).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.principal import Principal
from mercato.audit.actions import AuditAction
from mercato.audit.service import record as audit
from mercato.config import Settings
from mercato.kit import ssrf
from mercato.kit.clock import utcnow
from mercato.kit.errors import found_or_raise
from mercato.market import repository
from mercato.market.errors import (
    MarketSourceExists,
    MarketSourceNotFound,
    MirroredListingNotFound,
)
from mercato.market.schemas import RemoteChange
from mercato.models import MarketSource, MirroredListing


def normal_url(url: str) -> str:
    """The base URL as stored: checked for scheme, length and host, without query, fragment
    or trailing slash (the feed and listing links are built from it)."""
    parsed = ssrf.parse(url.strip())
    if parsed.query or parsed.fragment:
        raise ssrf.UrlNotAllowed("A market source URL is the store's base URL, without query or fragment.")
    if parsed.userinfo:
        raise ssrf.UrlNotAllowed("A market source URL may not carry a user name or password.")
    return str(parsed).rstrip("/")


async def check_url(settings: Settings, url: str) -> ssrf.Target:
    return await ssrf.resolve(url, allowed_hosts=settings.outbound_allowed_hosts,
                              timeout=settings.market_timeout_seconds)


def feed_url(source_url: str, cursor: str | None) -> str:
    base = f"{source_url}/api/v1/sync/catalog"
    return base if cursor is None else f"{base}?cursor={cursor}"


# --- admin ------------------------------------------------------------------------------------------

async def create(session: AsyncSession, *, actor: Principal, settings: Settings, name: str,
                 url: str) -> MarketSource:
    """Add a source (not synced yet: the sweep, or POST …/sync, fetches it). 422
    ``url_not_allowed`` for a URL the guard refuses, 409 when the URL is already a source."""
    base = normal_url(url)
    await check_url(settings, feed_url(base, None))
    if await repository.by_url(session, base) is not None:
        raise MarketSourceExists(f"{base} is already a market source.")
    now = utcnow()
    source = MarketSource(id=uuid.uuid4(), name=name.strip() or base, url=base, enabled=True, failure_count=0,
                          health="never", created_at=now, updated_at=now)
    repository.add(session, source)
    await session.flush()
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.market_source_create,
                resource_type="market_source", resource_id=source.id, after={"name": source.name, "url": base})
    return source


async def get(session: AsyncSession, source_id: uuid.UUID) -> MarketSource:
    return found_or_raise(await repository.get(session, source_id),
                          MarketSourceNotFound, f"No market source {source_id}.")


async def delete(session: AsyncSession, *, actor: Principal, source_id: uuid.UUID) -> None:
    source = await get(session, source_id)
    await repository.delete_source(session, source.id)
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.market_source_delete,
                resource_type="market_source", resource_id=source.id, before={"name": source.name, "url": source.url})


async def sources(session: AsyncSession) -> tuple[list[MarketSource], dict[uuid.UUID, int]]:
    return await repository.all_sources(session), await repository.counts(session)


async def listing_count(session: AsyncSession, source_id: uuid.UUID) -> int:
    return (await repository.counts(session)).get(source_id, 0)


# --- public -----------------------------------------------------------------------------------------

async def browse(session: AsyncSession, *, source_id: uuid.UUID | None, q: str | None,
                 after: tuple[datetime, uuid.UUID] | None, limit: int
                 ) -> tuple[list[MirroredListing], dict[uuid.UUID, MarketSource]]:
    rows = await repository.search(session, source_id=source_id, q=q, after=after, limit=limit)
    return rows, await repository.by_ids(session, list({row.source_id for row in rows}))


async def mirrored_listing(session: AsyncSession, listing_id: uuid.UUID) -> tuple[MirroredListing, MarketSource]:
    row = await repository.listing(session, listing_id)
    source = None if row is None else await repository.get(session, row.source_id)
    if row is None or source is None:
        raise MirroredListingNotFound(f"No mirrored listing {listing_id}.")
    return row, source


# --- applying a feed page ---------------------------------------------------------------------------

async def apply(session: AsyncSession, source_id: uuid.UUID, changes: Sequence[RemoteChange], *,
                reset: bool, now: datetime) -> tuple[int, int]:
    """Apply one page of the source's feed: on ``reset`` drop everything held first; upsert
    each listing whose hash differs; delete tombstoned ones. Returns (upserted, removed)."""
    removed = await repository.remove_all_listings(session, source_id) if reset else 0
    gone = [change.id for change in changes if change.deleted]
    removed += await repository.remove_listings(session, source_id, gone)
    live = [change for change in changes if not change.deleted]
    held = await repository.mirrored(session, source_id, [change.id for change in live])
    upserted = 0
    for change in live:
        assert change.listing is not None and change.hash is not None  # RemoteChange guarantees it
        data = change.listing.model_dump(mode="json")
        row = held.get(change.id)
        if row is None:
            repository.add_listing(session, MirroredListing(
                id=uuid.uuid4(), source_id=source_id, remote_id=change.id, slug=change.listing.slug,
                name=change.listing.name, hash=change.hash, data=data, updated_at=now))
        elif row.hash != change.hash:
            row.slug, row.name, row.hash, row.data, row.updated_at = (
                change.listing.slug, change.listing.name, change.hash, data, now)
        else:
            continue
        upserted += 1
    await session.flush()
    return upserted, removed
