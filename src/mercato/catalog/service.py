"""Catalog rules: listings, their states and who may see or change them; what other modules
use of the catalog (stock, counters, review outcomes, categories, search).

Listing states follow DOMAIN.md. Review outcomes reach a listing through
:func:`on_submitted`, :func:`on_approved` and :func:`on_refused`, called by the review
module in its own transaction. Beside this module: ``categories`` (the store's categories)
and ``browse`` (``GET /listings``: search, filters, facets), re-exported here.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.permissions import Condition, Permission
from mercato.access.principal import Principal
from mercato.audit.actions import AuditAction
from mercato.audit.service import record as audit
from mercato.bus.events import CloudEvent
from mercato.bus.outbox import publish
from mercato.catalog import repository
from mercato.catalog.browse import facet_counts, search_listings, visible_batch_by_ids
from mercato.catalog.categories import (
    categories,
    categories_by_id,
    category,
    category_id_of,
    create_category,
    delete_category,
    seed_categories,
    update_category,
)
from mercato.catalog.errors import InvalidOffer, ListingNotFound, ListingSlugTaken, ListingTransitionRefused
from mercato.catalog.search.backend import listing_search_for
from mercato.kit.clock import utcnow
from mercato.kit.errors import Forbidden, found_or_raise
from mercato.models import Listing, Publisher
from mercato.publishers import service as publishers

__all__ = [
    "REVIEWABLE", "add_rating", "add_to_day", "categories", "categories_by_id", "category", "count", "create",
    "create_category", "daily_stats", "delete_category", "delist", "evict_details", "evict_details_of",
    "evict_details_of_publisher",
    "facet_counts", "for_admin", "get_by_id", "get_for_change", "get_visible", "index_generation",
    "listings_of_publisher", "most_popular_in_category",
    "of_publisher", "on_approved", "on_latest_changed", "on_refused", "on_submitted", "publishers_by_id",
    "reindex", "related", "relist", "reserve_stock", "return_stock", "scope", "search_listings",
    "seed_categories", "suspend", "unsuspend", "update", "update_category", "visible_batch",
    "visible_batch_by_ids",
]

# Listing states from which a submitted version puts the listing (back) into review.
REVIEWABLE = ("draft", "rejected", "changes_requested")



# --- who sees what ------------------------------------------------------------------------------

async def scope(session: AsyncSession, viewer: Principal | None,
                permission: Permission = Permission.listing_read) -> tuple[Condition | None, list[uuid.UUID]]:
    """The viewer's condition for ``permission`` and the publishers they belong to."""
    if viewer is None:
        return None, []
    condition = viewer.condition_for(permission)
    member_of = await publishers.publisher_ids_of(session, viewer.user_id) if condition is Condition.own else []
    return condition, member_of


async def get_visible(session: AsyncSession, viewer: Principal | None, key: str) -> Listing:
    condition, member_of = await scope(session, viewer)
    listing = await repository.by_key(session, key, condition=condition, publisher_ids=member_of)
    if listing is None:
        raise ListingNotFound(f"There is no listing {key!r}.")
    return listing


async def get_for_change(session: AsyncSession, actor: Principal, key: str, permission: Permission) -> Listing:
    """A listing the actor may see (else 404) and change under ``permission`` (else 403):
    ``any``, or ``own`` as a member of its publisher. API-token scopes name the listing slug.

    Holding ``permission`` on the listing is enough to see it for that change: a token scoped
    ``version:upload@slug`` reaches its draft listing without ``listing:read`` too. Anyone
    else gets the same 404 as for a listing that does not exist."""
    try:
        listing = await get_visible(session, actor, key)
    except ListingNotFound:
        listing = await repository.by_key(session, key, condition=Condition.any)
        if listing is None or not await _may(session, actor, listing, permission):
            raise
        return listing
    if await _may(session, actor, listing, permission):
        return listing
    raise Forbidden(f"Only members of this listing's publisher or admins may do this ({permission.value}).")


async def _may(session: AsyncSession, actor: Principal, listing: Listing, permission: Permission) -> bool:
    condition = actor.condition_for(permission, listing.slug)
    if condition is Condition.any:
        return True
    return condition is Condition.own and bool(
        await publishers.member_role(session, listing.publisher_id, actor.user_id))


async def get_by_id(session: AsyncSession, listing_id: uuid.UUID) -> Listing:
    listing = found_or_raise(await repository.by_id(session, listing_id), ListingNotFound,
                             f"There is no listing {listing_id}.")
    return listing


async def visible_batch(session: AsyncSession, viewer: Principal | None, *, ids: Sequence[uuid.UUID] | None,
                        slugs: Sequence[str] | None) -> tuple[list[Listing], list[str]]:
    condition, member_of = await scope(session, viewer)
    if ids is not None:
        wanted = list(dict.fromkeys(ids))
        found = {row.id: row for row in await repository.by_ids(session, wanted, condition=condition,
                                                                  publisher_ids=member_of)}
        return [found[i] for i in wanted if i in found], [str(i) for i in wanted if i not in found]
    wanted_slugs = list(dict.fromkeys(slugs or []))
    by_slug = {row.slug: row for row in await repository.by_slugs(session, wanted_slugs, condition=condition,
                                                                    publisher_ids=member_of)}
    return [by_slug[s] for s in wanted_slugs if s in by_slug], [s for s in wanted_slugs if s not in by_slug]


async def of_publisher(session: AsyncSession, viewer: Principal | None, publisher: Publisher, *,
                       after: Any, limit: int) -> list[Listing]:
    condition, member_of = await scope(session, viewer)
    return await repository.of_publisher(session, publisher.id, condition=condition, member_of=member_of,
                                         after=after, limit=limit)


# --- offers -------------------------------------------------------------------------------------

def _offer_columns(offers: list[dict[str, Any]], currency: str) -> dict[str, Any]:
    """Map the API's offers onto the listing's price columns."""
    if not offers:
        offers = [{"delivery": "digital", "price": {"amount": 0, "currency": currency}, "stock": None}]
    deliveries = [offer["delivery"] for offer in offers]
    if len(set(deliveries)) != len(deliveries):
        raise InvalidOffer("Give at most one digital and one physical offer.",
                           errors=[{"loc": ["body", "offers"], "msg": "duplicate delivery", "type": "value_error"}])
    columns: dict[str, Any] = {"digital_price": None, "physical_price": None, "stock": None, "currency": currency}
    for index, offer in enumerate(offers):
        if offer["price"]["currency"] != currency:
            raise InvalidOffer(f"Prices are in the store currency, {currency}.", errors=[
                {"loc": ["body", "offers", index, "price", "currency"], "msg": f"must be {currency}",
                 "type": "value_error"}])
        if offer["delivery"] == "digital":
            if offer.get("stock") is not None:
                raise InvalidOffer("Only physical offers have stock.", errors=[
                    {"loc": ["body", "offers", index, "stock"], "msg": "digital offers have no stock",
                     "type": "value_error"}])
            columns["digital_price"] = offer["price"]["amount"]
        else:
            columns["physical_price"] = offer["price"]["amount"]
            columns["stock"] = offer.get("stock") or 0
    prices = [p for p in (columns["digital_price"], columns["physical_price"]) if p is not None]
    columns["sort_price"] = min(prices)
    both = columns["digital_price"] is not None and columns["physical_price"] is not None
    columns["delivery"] = "both" if both else ("digital" if columns["digital_price"] is not None else "physical")
    return columns


def _event_data(listing: Listing, **extra: Any) -> dict[str, Any]:
    return {"listing_id": str(listing.id), "publisher_id": str(listing.publisher_id), "slug": listing.slug, **extra}


async def reindex(session: AsyncSession, listing_id: uuid.UUID) -> None:
    """Bring the listing's search entry up to date in the caller's transaction.

    The one use of the search port not handed the runtime's adapter: a listing changes through
    many paths that hold only a session (this module's moves, the releases and moderation
    services, Open VSX, the consoles, the demo data). Reindexing keeps nothing per process (it
    writes the index and bumps its generation, which invalidates the answers the runtime's
    adapter cached), so an adapter for the session's dialect, made here, does the same."""
    await listing_search_for(session.bind.dialect.name).reindex(session, listing_id)


# --- listings -----------------------------------------------------------------------------------

async def create(session: AsyncSession, *, actor: Principal, fields: dict[str, Any], currency: str) -> Listing:
    publisher = await publishers.get(session, fields["publisher"])
    condition = actor.condition_for(Permission.listing_create, publisher.slug)
    if condition is not Condition.any and not (
            condition is Condition.own and await publishers.member_role(session, publisher.id, actor.user_id)):
        raise Forbidden(f"Only members of {publisher.slug!r} may create its listings.")
    now = utcnow()
    listing = Listing(
        id=uuid.uuid4(), slug=fields["slug"], publisher_id=publisher.id, name=fields["name"], kind=fields["kind"],
        status="draft", category_id=await category_id_of(session, fields.get("category")),
        tags=list(dict.fromkeys(fields.get("tags") or [])), summary=fields.get("summary", ""),
        description=fields.get("description", ""), homepage=fields.get("homepage"), license=fields.get("license"),
        icon_url=fields.get("icon_url"), screenshots=fields.get("screenshots") or [], platforms=[],
        rating_count=0, rating_sum=0, rating_average=0.0, download_count=0, install_count=0, sale_count=0,
        revision=1, created_at=now, updated_at=now, **_offer_columns(fields.get("offers") or [], currency))
    if await repository.slug_taken(session, listing.slug) or not await repository.add(session, listing):
        raise ListingSlugTaken(f"The listing slug {listing.slug!r} is taken; choose another.")
    await publish(session, CloudEvent(type="listing.created", subject=str(listing.id),
                                      data=_event_data(listing, kind=listing.kind)))
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.listing_create,
                resource_type="listing", resource_id=listing.id,
                after={"slug": listing.slug, "publisher": publisher.slug, "kind": listing.kind})
    return listing


async def update(session: AsyncSession, *, actor: Principal, key: str, changes: dict[str, Any],
                 currency: str) -> Listing:
    """Metadata edits go live at once, also on a published listing (only versions are reviewed)."""
    listing = await get_for_change(session, actor, key, Permission.listing_update)
    if listing.status == "suspended" and actor.condition_for(Permission.listing_suspend) is None:
        raise ListingTransitionRefused("A suspended listing cannot be edited; contact the store's admins.")
    values: dict[str, Any] = {}
    for field in ("name", "summary", "description", "homepage", "license", "icon_url", "screenshots", "tags"):
        if field in changes:
            value = changes[field]
            if value is None and field in ("name", "summary", "description", "screenshots", "tags"):
                continue
            values[field] = list(dict.fromkeys(value)) if field == "tags" else value
    if "category" in changes:
        values["category_id"] = await category_id_of(session, changes["category"])
    if changes.get("offers") is not None:
        values.update(_offer_columns(changes["offers"], currency))
    before = {field: getattr(listing, field) for field in values}
    changed = sorted(field for field, value in values.items() if before[field] != value)
    if not changed:
        return listing
    await repository.touch(session, listing.id, at=utcnow(), **{field: values[field] for field in changed})
    await reindex(session, listing.id)
    await publish(session, CloudEvent(type="listing.updated", subject=str(listing.id),
                                      data=_event_data(listing, changed=changed)))
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.listing_update,
                resource_type="listing", resource_id=listing.id, before={f: before[f] for f in changed},
                after={f: values[f] for f in changed})
    return listing


async def _move(session: AsyncSession, listing: Listing, *, from_: Sequence[str], to: str, refusal: str,
                **values: Any) -> None:
    if not await repository.transition(session, listing.id, from_=from_, to=to, at=utcnow(), **values):
        raise ListingTransitionRefused(refusal.format(status=listing.status))
    await reindex(session, listing.id)


async def delist(session: AsyncSession, *, actor: Principal, key: str) -> Listing:
    listing = await get_for_change(session, actor, key, Permission.listing_delist)
    await _move(session, listing, from_=("published",), to="delisted",
                refusal="Only a published listing can be delisted (it is {status}).")
    await publish(session, CloudEvent(type="listing.delisted", subject=str(listing.id), data=_event_data(listing)))
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.listing_delist,
                resource_type="listing", resource_id=listing.id, before={"status": "published"},
                after={"status": "delisted"})
    return listing


async def relist(session: AsyncSession, *, actor: Principal, key: str) -> Listing:
    listing = await get_for_change(session, actor, key, Permission.listing_delist)
    await _move(session, listing, from_=("delisted",), to="published",
                refusal="Only a delisted listing can be relisted (it is {status}).")
    await publish(session, CloudEvent(type="listing.relisted", subject=str(listing.id), data=_event_data(listing)))
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.listing_relist,
                resource_type="listing", resource_id=listing.id, before={"status": "delisted"},
                after={"status": "published"})
    return listing


async def suspend(session: AsyncSession, *, actor: Principal, key: str, reason: str) -> Listing:
    listing = await get_for_change(session, actor, key, Permission.listing_suspend)
    previous = listing.status
    if previous == "suspended":
        raise ListingTransitionRefused("The listing is already suspended.")
    await _move(session, listing, from_=(previous,), to="suspended", status_before_suspension=previous,
                suspension_reason=reason, refusal="The listing changed meanwhile (it was {status}); try again.")
    await publish(session, CloudEvent(type="listing.suspended", subject=str(listing.id),
                                      data=_event_data(listing, reason=reason)))
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.listing_suspend,
                resource_type="listing", resource_id=listing.id, before={"status": previous},
                after={"status": "suspended", "reason": reason})
    return listing


async def unsuspend(session: AsyncSession, *, actor: Principal, key: str) -> Listing:
    listing = await get_for_change(session, actor, key, Permission.listing_suspend)
    if listing.status != "suspended":
        raise ListingTransitionRefused(f"Only a suspended listing can be unsuspended (it is {listing.status}).")
    back_to = listing.status_before_suspension or "draft"
    await _move(session, listing, from_=("suspended",), to=back_to, status_before_suspension=None,
                suspension_reason=None, refusal="The listing changed meanwhile (it is {status}).")
    await publish(session, CloudEvent(type="listing.unsuspended", subject=str(listing.id),
                                      data=_event_data(listing, status=back_to)))
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.listing_unsuspend,
                resource_type="listing", resource_id=listing.id, before={"status": "suspended"},
                after={"status": back_to})
    return listing


# --- review outcomes (called by the review and publishing modules, same transaction) -----------

async def on_submitted(session: AsyncSession, listing: Listing, *, version: str) -> bool:
    """A version went to review: a listing not yet public goes into review with it.
    Returns whether the listing itself is under review (a new listing)."""
    if listing.status in REVIEWABLE:
        await _move(session, listing, from_=REVIEWABLE, to="in_review",
                    refusal="The listing changed meanwhile (it is {status}).")
        await publish(session, CloudEvent(type="listing.submitted", subject=str(listing.id),
                                          data=_event_data(listing, version=version)))
        return True
    if listing.status == "suspended":
        raise ListingTransitionRefused("A suspended listing takes no new submissions.")
    return listing.status == "in_review"


async def on_approved(session: AsyncSession, listing: Listing, *, latest_id: uuid.UUID | None,
                      latest: str | None, platforms: list[str]) -> None:
    """A version was approved: "latest" moves, and a listing in review is published."""
    now = utcnow()
    await repository.touch(session, listing.id, at=now, latest_version_id=latest_id, latest_version=latest,
                           platforms=platforms)
    if listing.status == "in_review":
        await _move(session, listing, from_=("in_review",), to="published",
                    published_at=listing.published_at or now, refusal="The listing changed meanwhile ({status}).")
        await publish(session, CloudEvent(type="listing.published", subject=str(listing.id),
                                          data=_event_data(listing)))
    else:
        await reindex(session, listing.id)


async def on_refused(session: AsyncSession, listing: Listing, *, outcome: str, reason: str) -> None:
    """A version was rejected or sent back: a listing in review follows it."""
    if listing.status != "in_review":
        return
    await _move(session, listing, from_=("in_review",), to=outcome, refusal="The listing changed meanwhile.")
    await publish(session, CloudEvent(type=f"listing.{outcome}", subject=str(listing.id),
                                      data=_event_data(listing, reason=reason)))


async def on_latest_changed(session: AsyncSession, listing: Listing, *, latest_id: uuid.UUID | None,
                            latest: str | None, platforms: list[str]) -> None:
    await repository.touch(session, listing.id, at=utcnow(), latest_version_id=latest_id, latest_version=latest,
                           platforms=platforms)
    await reindex(session, listing.id)


async def count(session: AsyncSession, listing_id: uuid.UUID, *, day_stat: str | None = None,
                **increments: int) -> None:
    """Move a listing's counters (downloads, installs, sales) and its day's stats together."""
    await repository.add_to_counters(session, listing_id, **increments)
    if day_stat is not None:
        await repository.add_daily(session, listing_id, utcnow().date(),
                                   **{day_stat: sum(increments.values())})


async def add_to_day(session: AsyncSession, listing_id: uuid.UUID, day: date, **increments: int) -> None:
    """Add to one listing's figures of one day only (the stats module books revenue so,
    on the day of the sale or refund); a negative increment takes away."""
    await repository.add_daily(session, listing_id, day, **increments)


async def add_rating(session: AsyncSession, listing_id: uuid.UUID, *, count: int, total: int) -> None:
    await repository.add_rating(session, listing_id, count=count, total=total, at=utcnow())
    if count != 0:  # hiding takes a rating out of its day's figures as unhiding puts it back
        await repository.add_daily(session, listing_id, utcnow().date(), ratings=count, rating_sum=total)


# --- stock (M9, INV-5): the order saga's reservations, in the caller's transaction --------------

async def reserve_stock(session: AsyncSession, listing_id: uuid.UUID, quantity: int) -> bool:
    """Take ``quantity`` units of a physical listing's stock, never below zero: one guarded
    statement, so concurrent buyers never oversell. False, changing nothing, when fewer are
    left. The row stays locked until the caller's transaction ends."""
    return await repository.reserve_stock(session, listing_id, quantity)


async def return_stock(session: AsyncSession, listing_id: uuid.UUID, quantity: int) -> None:
    """Put ``quantity`` units back (a canceled, failed or expired order that held them)."""
    await repository.return_stock(session, listing_id, quantity)


def evict_details(session: AsyncSession, *listing_ids: uuid.UUID) -> None:
    """Drop these listings' cached details (and their pages' extras) once ``session`` commits:
    for a change that shows on the listing page without changing the detail (a review's text)."""
    repository.evict_details(session, *listing_ids)


async def evict_details_of_publisher(session: AsyncSession, publisher_id: uuid.UUID) -> None:
    """Evict the cached details of a publisher's listings once the transaction commits (they
    show its name and badge)."""
    await repository.evict_details_of(session, publisher_id=publisher_id)


async def evict_details_of(session: AsyncSession, *, publisher_id: uuid.UUID | None = None,
                           category_id: uuid.UUID | None = None) -> list[uuid.UUID]:
    """Evict the cached details of a publisher's or a category's listings once the transaction
    commits; returns their ids (the listing detail's handler evicts them in every process)."""
    return await repository.evict_details_of(session, publisher_id=publisher_id, category_id=category_id)


async def most_popular_in_category(session: AsyncSession, category_id: uuid.UUID, *, limit: int) -> list[Listing]:
    """Published listings of a category, most downloaded and installed first (a detail's related listings)."""
    return await repository.most_popular_in_category(session, category_id, limit=limit)


# --- stats --------------------------------------------------------------------------------------

async def listings_of_publisher(session: AsyncSession, publisher_id: uuid.UUID) -> list[tuple[uuid.UUID, str]]:
    """(id, slug) of every listing of a publisher, whatever its state."""
    return await repository.ids_of_publisher(session, publisher_id)


async def daily_stats(session: AsyncSession, listing_ids: Sequence[uuid.UUID], *, since: Any, until: Any) -> list[Any]:
    """ListingDailyStat rows of these listings between two dates (inclusive)."""
    return await repository.daily_stats(session, listing_ids, since=since, until=until)


async def publishers_by_id(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, Publisher]:
    return await repository.publishers(session, ids)


async def related(session: AsyncSession, listing: Listing) -> list[Listing]:
    return await repository.related(session, listing)


async def for_admin(session: AsyncSession, *, text: str | None, status: str | None, limit: int = 50) -> list[Listing]:
    """Listings in every state, for the admin console (callers hold ``listing:suspend``)."""
    return await repository.for_admin(session, text=text, status=status, limit=limit)


async def index_generation(session: AsyncSession) -> int | None:
    """Changes whenever a listing enters, leaves or changes in the search index (not with the
    counters that order popularity and rating): what a cached page of listings is keyed on."""
    return await repository.search_generation(session)
