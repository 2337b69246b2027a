"""Ratings and written reviews (C5).

Only users entitled to a listing review it, once; the author edits or deletes it; the
listing's publisher replies; moderators (``rating:hide`` under ``any``) hide abusive
reviews and delete them. The listing's rating counters move in the same transaction as
every change, by exactly what changed: hidden reviews do not count.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.permissions import Condition, Permission
from mercato.access.principal import Principal
from mercato.accounts import service as accounts
from mercato.audit.actions import AuditAction
from mercato.audit.service import record as audit
from mercato.bus.events import CloudEvent
from mercato.bus.outbox import publish
from mercato.catalog import service as catalog
from mercato.kit.clock import utcnow
from mercato.kit.errors import Forbidden, found_or_raise
from mercato.kit.markdown import render_markdown
from mercato.kit.pagination import InvalidCursor, keyset_page
from mercato.library import service as library
from mercato.models import Listing, ListingReview
from mercato.publishers import service as publishers
from mercato.ratings import repository
from mercato.ratings.errors import NotEntitled, OwnListing, ReviewExists, ReviewNotFound, ReviewStateUnchanged
from mercato.ratings.repository import After, Sort
from mercato.ratings.schemas import ReviewAuthor, ReviewPage, ReviewRead, ReviewReply

ANONYMOUS_AUTHOR = "A user"


@dataclass(frozen=True)
class Viewer:
    """Who reads reviews of one listing: moderators see hidden ones, authors their own."""

    user_id: uuid.UUID | None
    moderator: bool


def viewer_of(principal: Principal | None, listing: Listing) -> Viewer:
    if principal is None:
        return Viewer(None, False)
    return Viewer(principal.user_id, is_moderator(principal, listing))


def is_moderator(principal: Principal, listing: Listing) -> bool:
    return principal.condition_for(Permission.rating_hide, listing.slug) is Condition.any


def _event(review: ListingReview, listing: Listing, **extra: Any) -> dict[str, Any]:
    return {"review_id": str(review.id), "listing_id": str(listing.id), "publisher_id": str(listing.publisher_id),
            "user_id": str(review.user_id), **extra}


async def author_names(session: AsyncSession, reviews: list[ListingReview]) -> dict[uuid.UUID, str]:
    """Display names of the reviews' authors; "A user" for those without one (never an email)."""
    authors = {review.user_id for review in reviews}
    found = await accounts.display_names(session, authors)  # one read, not one per author
    return {user_id: (found.get(user_id) or "").strip() or ANONYMOUS_AUTHOR for user_id in authors}


# --- reading ------------------------------------------------------------------------------------

async def reviews_of(session: AsyncSession, *, viewer: Principal | None, key: str, sort: Sort,
                     after: After | None, limit: int) -> tuple[Listing, Viewer, list[ListingReview]]:
    listing = await catalog.get_visible(session, viewer, key)
    seen_by = viewer_of(viewer, listing)
    rows = await repository.page(session, listing.id, viewer_id=seen_by.user_id, see_hidden=seen_by.moderator,
                                 sort=sort, after=after, limit=limit)
    return listing, seen_by, rows


async def histogram(session: AsyncSession, listing_id: uuid.UUID) -> dict[str, int]:
    """Visible reviews of a listing per star, ``"1"`` … ``"5"`` (every key present)."""
    counts = await repository.histogram(session, listing_id)
    return {str(stars): counts.get(stars, 0) for stars in range(1, 6)}


# --- the author ---------------------------------------------------------------------------------

def _require_write(actor: Principal, listing: Listing) -> None:
    """API tokens may be scoped to one listing (``rating:write@slug``)."""
    if actor.condition_for(Permission.rating_write, listing.slug) is None:
        raise Forbidden("This token may not review this listing (rating:write).")


async def create(session: AsyncSession, *, actor: Principal, key: str, rating: int, title: str,
                 body: str) -> tuple[Listing, ListingReview]:
    listing = await catalog.get_visible(session, actor, key)
    _require_write(actor, listing)
    if await publishers.member_role(session, listing.publisher_id, actor.user_id):
        raise OwnListing("Members of a listing's publisher cannot review it; reply to reviews instead.")
    if not await library.is_entitled(session, user_id=actor.user_id, listing_id=listing.id):
        raise NotEntitled("Only owners review a listing: buy it, or download it once if it is free.")
    if await repository.of_author(session, listing.id, actor.user_id):
        raise ReviewExists("Edit your review (PATCH) instead of writing another.")
    now = utcnow()
    review = ListingReview(id=uuid.uuid4(), listing_id=listing.id, user_id=actor.user_id, rating=rating,
                           title=title, body=body, hidden=False, created_at=now, updated_at=now)
    if not await repository.add(session, review):
        raise ReviewExists("Edit your review (PATCH) instead of writing another.")
    await catalog.add_rating(session, listing.id, count=1, total=rating)
    await publish(session, CloudEvent(type="rating.created", subject=str(review.id),
                                      data=_event(review, listing, rating=rating)))
    return listing, review


async def update(session: AsyncSession, *, actor: Principal, key: str, review_id: uuid.UUID,
                 changes: dict[str, Any]) -> tuple[Listing, ListingReview]:
    """The author edits their review; another caller's review is not found (404)."""
    listing = await catalog.get_visible(session, actor, key)
    _require_write(actor, listing)
    claimed = await repository.claim(session, review_id, listing.id, at=utcnow(), author_id=actor.user_id)
    review = found_or_raise(claimed, ReviewNotFound, f"You have no review {review_id} of this listing.")
    before = review.rating
    for field in ("rating", "title", "body"):
        if changes.get(field) is not None:
            setattr(review, field, changes[field])
    await session.flush()
    if review.rating != before and not review.hidden:
        await catalog.add_rating(session, listing.id, count=0, total=review.rating - before)
    catalog.evict_details(session, listing.id)  # the listing page shows the first reviews' text
    await publish(session, CloudEvent(type="rating.updated", subject=str(review.id),
                                      data=_event(review, listing, rating=review.rating)))
    return listing, review


async def delete(session: AsyncSession, *, actor: Principal, key: str, review_id: uuid.UUID) -> None:
    """The author, or a moderator, deletes a review."""
    listing = await catalog.get_visible(session, actor, key)
    moderator = is_moderator(actor, listing)
    if not moderator:
        _require_write(actor, listing)
    removed = await repository.remove(session, review_id, listing.id, author_id=None if moderator else actor.user_id)
    author_id, rating, hidden = found_or_raise(removed, ReviewNotFound,
                                               f"There is no review {review_id} of this listing that you may delete.")
    if not hidden:
        await catalog.add_rating(session, listing.id, count=-1, total=-rating)
    catalog.evict_details(session, listing.id)
    await publish(session, CloudEvent(type="rating.deleted", subject=str(review_id), data={
        "review_id": str(review_id), "listing_id": str(listing.id), "publisher_id": str(listing.publisher_id),
        "user_id": str(author_id)}))


# --- the publisher ------------------------------------------------------------------------------

async def reply(session: AsyncSession, *, actor: Principal, key: str, review_id: uuid.UUID,
                body: str) -> tuple[Listing, ListingReview]:
    """Members of the listing's publisher (``rating:reply`` own) or ``any`` holders answer a
    review; posting again replaces the answer."""
    listing = await catalog.get_visible(session, actor, key)
    condition = actor.condition_for(Permission.rating_reply, listing.slug)
    allowed = condition is Condition.any or (
        condition is Condition.own and await publishers.member_role(session, listing.publisher_id, actor.user_id))
    if not allowed:
        raise Forbidden("Only members of this listing's publisher may reply to its reviews.")
    seen_by = viewer_of(actor, listing)
    if await repository.visible_one(session, review_id, listing.id, viewer_id=seen_by.user_id,
                                    see_hidden=seen_by.moderator) is None:
        raise ReviewNotFound(f"There is no review {review_id} of this listing.")
    now = utcnow()
    review = found_or_raise(await repository.claim(session, review_id, listing.id, at=now),
                            ReviewNotFound, f"There is no review {review_id} of this listing.")
    review.reply, review.reply_by, review.replied_at = body, actor.user_id, now
    await session.flush()
    catalog.evict_details(session, listing.id)
    await publish(session, CloudEvent(type="rating.replied", subject=str(review.id), data=_event(review, listing)))
    return listing, review


# --- moderation ---------------------------------------------------------------------------------

async def hide(session: AsyncSession, *, actor: Principal, key: str, review_id: uuid.UUID, hidden: bool,
               reason: str | None) -> tuple[Listing, ListingReview]:
    """Moderators hide an abusive review (it stops counting) or show it again, audited."""
    listing = await catalog.get_visible(session, actor, key)
    if not is_moderator(actor, listing):
        raise Forbidden("Only reviewers and admins hide reviews (rating:hide).")
    review = await repository.set_hidden(session, review_id, listing.id, hidden=hidden, reason=reason,
                                         by=actor.user_id, at=utcnow())
    if review is None:
        if not await repository.exists(session, review_id, listing.id):
            raise ReviewNotFound(f"There is no review {review_id} of this listing.")
        raise ReviewStateUnchanged(f"The review is already {'hidden' if hidden else 'visible'}.")
    sign = -1 if hidden else 1
    await catalog.add_rating(session, listing.id, count=sign, total=sign * review.rating)
    await publish(session, CloudEvent(type="rating.hidden", subject=str(review.id),
                                      data=_event(review, listing, hidden=hidden, reason=reason)))
    await audit(session, actor_id=actor.user_id, actor_email=actor.email,
                action=AuditAction.rating_hide if hidden else AuditAction.rating_unhide,
                resource_type="listing_review", resource_id=review.id,
                before={"hidden": not hidden}, after={"hidden": hidden, "reason": reason,
                                                      "listing_id": listing.id, "rating": review.rating})
    return listing, review


async def for_moderation(session: AsyncSession, *, hidden: bool, limit: int = 100) -> list[ListingReview]:
    """Hidden (or visible) reviews across listings for moderators (callers hold ``rating:hide``)."""
    return await repository.for_moderation(session, hidden=hidden, limit=limit)


# --- presenting reviews (the API and the storefront) ---------------------------------------------

def read(review: ListingReview, names: dict[uuid.UUID, str], viewer: Viewer) -> ReviewRead:
    """A review as the API shows it to ``viewer`` (the hiding reason only to its author and moderators)."""
    mine = viewer.user_id is not None and viewer.user_id == review.user_id
    return ReviewRead(
        id=review.id, listing_id=review.listing_id, author=ReviewAuthor(name=names[review.user_id]), mine=mine,
        rating=review.rating, title=review.title, body=review.body, body_html=render_markdown(review.body),
        hidden=review.hidden, hidden_reason=review.hidden_reason if (mine or viewer.moderator) else None,
        reply=(ReviewReply(body=review.reply, body_html=render_markdown(review.reply), replied_at=review.replied_at)
               if review.reply is not None and review.replied_at is not None else None),
        created_at=review.created_at, updated_at=review.updated_at)


async def review_page(session: AsyncSession, *, viewer: Principal | None, key: str, sort: Sort, cursor: str | None,
                      limit: int) -> ReviewPage:
    """A page of a listing's reviews as ``GET /listings/{key}/reviews`` answers it (hidden ones
    only for their author and moderators; authors by display name); ``cursor`` continues a page."""
    listing, viewer_is, rows = await reviews_of(session, viewer=viewer, key=key, sort=sort,
                                                after=decode(cursor, sort), limit=limit + 1)
    page, next_cursor = keyset_page(rows, limit, lambda review: encode(sort, review))
    names = await author_names(session, page)
    return ReviewPage(items=[read(review, names, viewer_is) for review in page], next_cursor=next_cursor)


# --- cursors: (sort, rating, created_at, id) of the last review shown --------------------------

def encode(sort: str, review: ListingReview) -> str:
    raw = json.dumps([sort, review.rating, review.created_at.isoformat(), str(review.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str | None, sort: str) -> After | None:
    if not cursor:
        return None
    try:
        made_for, rating, at, review_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        parsed = datetime.fromisoformat(at)
        if made_for != sort or parsed.tzinfo is None or not isinstance(rating, int):
            raise ValueError("cursor of another listing order")
        return rating, parsed, uuid.UUID(review_id)
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise InvalidCursor("Use the next_cursor value from the previous page, with the same sort.", errors=[
            {"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "invalid_cursor"}]) from exc
