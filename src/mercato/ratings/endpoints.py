"""Ratings and reviews of listings (C5)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Response
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.dependencies import OptionalPrincipal, idempotent, public, requires
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.catalog.errors import ListingNotFound
from mercato.kit.errors import Forbidden
from mercato.kit.pagination import CursorParam, Limit
from mercato.models import ListingReview
from mercato.platform.routing import ReadSession, TransactionalRoute, WriteSession
from mercato.ratings import service
from mercato.ratings.errors import NotEntitled, OwnListing, ReviewExists, ReviewNotFound, ReviewStateUnchanged
from mercato.ratings.schemas import (
    HideRequest,
    ReplyCreate,
    ReviewCreate,
    ReviewPage,
    ReviewRead,
    ReviewUpdate,
)
from mercato.ratings.service import read

router = APIRouter(route_class=TransactionalRoute, tags=["ratings"])

ListingKey = Annotated[str, Path(min_length=1, max_length=64, description="The listing's id or slug.")]
RatingWriter = Annotated[Principal, requires(Permission.rating_write)]


async def read_one(session: AsyncSession, review: ListingReview, viewer: service.Viewer) -> ReviewRead:
    return read(review, await service.author_names(session, [review]), viewer)


# --- routes -------------------------------------------------------------------------------------

@router.get("/listings/{listing_id}/reviews", response_model=ReviewPage, dependencies=[public()],
            responses=ListingNotFound.responses())
async def list_reviews(listing_id: ListingKey, session: ReadSession, viewer: OptionalPrincipal,
                       sort: Literal["newest", "rating_high", "rating_low"] = "newest",
                       cursor: CursorParam = None, limit: Limit = 20) -> ReviewPage:
    """Reviews of a listing (by id or slug). Hidden reviews are shown only to their author
    and to moderators. Authors appear by display name, never by email."""
    return await service.review_page(session, viewer=viewer, key=listing_id, sort=sort, cursor=cursor, limit=limit)


@router.post("/listings/{listing_id}/reviews", status_code=201, response_model=ReviewRead,
             responses=ListingNotFound.responses(NotEntitled, OwnListing, ReviewExists))
async def create_review(listing_id: ListingKey, body: ReviewCreate, actor: RatingWriter,
                        _key: Annotated[str | None, idempotent(required=False)], session: WriteSession) -> ReviewRead:
    """Rate and review a listing you own (bought, got for free, or granted), once; edit it
    with PATCH. Accepts an `Idempotency-Key`."""
    listing, review = await service.create(session, actor=actor, key=listing_id, rating=body.rating,
                                           title=body.title, body=body.body)
    return await read_one(session, review, service.viewer_of(actor, listing))


@router.patch("/listings/{listing_id}/reviews/{review_id}", response_model=ReviewRead,
              responses=ListingNotFound.responses(ReviewNotFound, Forbidden))
async def update_review(listing_id: ListingKey, review_id: uuid.UUID, body: ReviewUpdate, actor: RatingWriter,
                        session: WriteSession) -> ReviewRead:
    """Edit your own review (rating, title, body)."""
    listing, review = await service.update(session, actor=actor, key=listing_id, review_id=review_id,
                                           changes=body.model_dump(exclude_unset=True))
    return await read_one(session, review, service.viewer_of(actor, listing))


@router.delete("/listings/{listing_id}/reviews/{review_id}", status_code=204,
               responses=ListingNotFound.responses(ReviewNotFound, Forbidden))
async def delete_review(listing_id: ListingKey, review_id: uuid.UUID, actor: RatingWriter,
                        session: WriteSession) -> Response:
    """Delete your own review; moderators (rating:hide) may delete any."""
    await service.delete(session, actor=actor, key=listing_id, review_id=review_id)
    return Response(status_code=204)


@router.post("/listings/{listing_id}/reviews/{review_id}/reply", response_model=ReviewRead,
             responses=ListingNotFound.responses(ReviewNotFound, Forbidden))
async def reply_to_review(listing_id: ListingKey, review_id: uuid.UUID, body: ReplyCreate,
                          actor: Annotated[Principal, requires(Permission.rating_reply)],
                          session: WriteSession) -> ReviewRead:
    """Answer a review of your publisher's listing; posting again replaces the answer."""
    listing, review = await service.reply(session, actor=actor, key=listing_id, review_id=review_id, body=body.body)
    return await read_one(session, review, service.viewer_of(actor, listing))


@router.post("/listings/{listing_id}/reviews/{review_id}/hide", response_model=ReviewRead,
             responses=ListingNotFound.responses(ReviewNotFound, ReviewStateUnchanged, Forbidden))
async def hide_review(listing_id: ListingKey, review_id: uuid.UUID, body: HideRequest,
                      actor: Annotated[Principal, requires(Permission.rating_hide)],
                      session: WriteSession) -> ReviewRead:
    """Hide an abusive review (`{"hidden": true, "reason": …}`; it stops counting in the
    listing's average) or show it again (`{"hidden": false}`). Audited."""
    listing, review = await service.hide(session, actor=actor, key=listing_id, review_id=review_id,
                                         hidden=body.hidden, reason=body.reason)
    return await read_one(session, review, service.viewer_of(actor, listing))
