"""Every query on listing reviews (the ``listing_reviews`` table).

"Visible to" scoping lives here: hidden reviews are returned only to moderators
(``see_hidden``) and to their author. Changes that move a listing's rating counters
take the review's row first with a write (``claim``), or change it with one guarded
statement, so the counters move by exactly what changed even under concurrent edits.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, delete, false, func, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.kit.pagination import after_position
from mercato.models import ListingReview

Sort = Literal["newest", "rating_high", "rating_low"]
# (rating, created_at, id) of the last review of the previous page
After = tuple[int, datetime, uuid.UUID]


def _visible(*, viewer_id: uuid.UUID | None, see_hidden: bool) -> ColumnElement[bool]:
    if see_hidden:
        return true()
    if viewer_id is None:
        return ListingReview.hidden == false()
    return or_(ListingReview.hidden == false(), ListingReview.user_id == viewer_id)


async def of_author(session: AsyncSession, listing_id: uuid.UUID, user_id: uuid.UUID) -> ListingReview | None:
    return await session.scalar(select(ListingReview).where(ListingReview.listing_id == listing_id,
                                                            ListingReview.user_id == user_id))


async def add(session: AsyncSession, review: ListingReview) -> bool:
    """Insert; False when the author reviewed the listing meanwhile (the unique key decides,
    inside a savepoint so the caller's transaction stays usable)."""
    try:
        async with session.begin_nested():
            session.add(review)
    except IntegrityError:
        return False
    return True


async def histogram(session: AsyncSession, listing_id: uuid.UUID) -> dict[int, int]:
    """Visible (not hidden) reviews of the listing per star."""
    rows = await session.execute(select(ListingReview.rating, func.count()).where(
        ListingReview.listing_id == listing_id, ListingReview.hidden == false()).group_by(ListingReview.rating))
    return {int(rating): int(count) for rating, count in rows}


async def visible_one(session: AsyncSession, review_id: uuid.UUID, listing_id: uuid.UUID, *,
                      viewer_id: uuid.UUID | None, see_hidden: bool) -> ListingReview | None:
    return await session.scalar(select(ListingReview).where(
        ListingReview.id == review_id, ListingReview.listing_id == listing_id,
        _visible(viewer_id=viewer_id, see_hidden=see_hidden)))


async def exists(session: AsyncSession, review_id: uuid.UUID, listing_id: uuid.UUID) -> bool:
    return await session.scalar(select(ListingReview.id).where(
        ListingReview.id == review_id, ListingReview.listing_id == listing_id)) is not None


async def claim(session: AsyncSession, review_id: uuid.UUID, listing_id: uuid.UUID, *, at: datetime,
                author_id: uuid.UUID | None = None) -> ListingReview | None:
    """Take the review's row for a change (on PostgreSQL this write holds its lock until the
    transaction ends; SQLite write transactions are serial) and return it as it is now.
    With ``author_id``, only that author's review."""
    statement = update(ListingReview).where(ListingReview.id == review_id, ListingReview.listing_id == listing_id)
    if author_id is not None:
        statement = statement.where(ListingReview.user_id == author_id)
    result = await session.scalars(statement.values(updated_at=at).returning(ListingReview),
                                   execution_options={"populate_existing": True})
    return result.one_or_none()


async def remove(session: AsyncSession, review_id: uuid.UUID, listing_id: uuid.UUID, *,
                 author_id: uuid.UUID | None) -> tuple[uuid.UUID, int, bool] | None:
    """Delete the review (only the author's, with ``author_id``); returns what it counted:
    (author, rating, hidden)."""
    statement = delete(ListingReview).where(ListingReview.id == review_id, ListingReview.listing_id == listing_id)
    if author_id is not None:
        statement = statement.where(ListingReview.user_id == author_id)
    row = (await session.execute(statement.returning(ListingReview.user_id, ListingReview.rating,
                                                     ListingReview.hidden)
                                 .execution_options(synchronize_session=False))).first()
    return None if row is None else (row[0], row[1], row[2])


async def set_hidden(session: AsyncSession, review_id: uuid.UUID, listing_id: uuid.UUID, *, hidden: bool,
                     reason: str | None, by: uuid.UUID, at: datetime) -> ListingReview | None:
    """Guarded: only a review not already in that state changes; returns it, changed."""
    result = await session.scalars(
        update(ListingReview).where(ListingReview.id == review_id, ListingReview.listing_id == listing_id,
                                    ListingReview.hidden == (false() if hidden else true()))
        .values(hidden=hidden, hidden_reason=reason if hidden else None, hidden_by=by if hidden else None,
                updated_at=at).returning(ListingReview),
        execution_options={"populate_existing": True})
    return result.one_or_none()


async def page(session: AsyncSession, listing_id: uuid.UUID, *, viewer_id: uuid.UUID | None, see_hidden: bool,
               sort: Sort, after: After | None, limit: int) -> list[ListingReview]:
    query = select(ListingReview).where(ListingReview.listing_id == listing_id,
                                        _visible(viewer_id=viewer_id, see_hidden=see_hidden))
    newest = (ListingReview.created_at.desc(), ListingReview.id.desc())
    if after is not None:
        rating, at, last_id = after
        later = after_position(ListingReview.created_at, ListingReview.id, (at, last_id))
        if sort == "newest":
            query = query.where(later)
        elif sort == "rating_high":
            query = query.where(or_(ListingReview.rating < rating, and_(ListingReview.rating == rating, later)))
        else:
            query = query.where(or_(ListingReview.rating > rating, and_(ListingReview.rating == rating, later)))
    order: Sequence[Any] = newest
    if sort == "rating_high":
        order = (ListingReview.rating.desc(), *newest)
    elif sort == "rating_low":
        order = (ListingReview.rating.asc(), *newest)
    return list(await session.scalars(query.order_by(*order).limit(limit)))


async def for_moderation(session: AsyncSession, *, hidden: bool, limit: int) -> list[ListingReview]:
    """Reviews of every listing, hidden or visible ones, newest change first (the review console)."""
    return list(await session.scalars(select(ListingReview).where(ListingReview.hidden == hidden)
                                      .order_by(ListingReview.updated_at.desc(), ListingReview.id.desc())
                                      .limit(limit)))
