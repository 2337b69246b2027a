"""Every query on categories, listings and their daily stats.

"Visible to" scoping lives here: with ``listing:read`` under ``public`` (or anonymously) a
caller sees published listings; under ``own`` also every listing of the publishers they
are a member of; under ``any`` every listing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Float, Numeric, cast, delete, func, or_, select, text, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.permissions import Condition
from mercato.catalog.cache_keys import cache_keys
from mercato.kit.cache import evict_after_commit
from mercato.kit.db import insert_unless_conflict, refresh_if_held
from mercato.kit.pagination import after_key
from mercato.models import Category, Listing, ListingDailyStat, Publisher


def visible(condition: Condition | None, publisher_ids: Sequence[uuid.UUID]) -> ColumnElement[bool]:
    if condition is Condition.any:
        return true()
    published = Listing.status == "published"
    if condition is Condition.own and publisher_ids:
        return or_(published, Listing.publisher_id.in_(publisher_ids))
    return published


def _key_clause(key: str) -> ColumnElement[bool]:
    try:
        return Listing.id == uuid.UUID(key)
    except ValueError:
        return Listing.slug == key.lower()


async def by_key(session: AsyncSession, key: str, *, condition: Condition | None = Condition.any,
                 publisher_ids: Sequence[uuid.UUID] = ()) -> Listing | None:
    """A listing by id or slug, if the caller may see it."""
    return await session.scalar(select(Listing).where(_key_clause(key), visible(condition, publisher_ids)))


async def by_id(session: AsyncSession, listing_id: uuid.UUID) -> Listing | None:
    return await session.get(Listing, listing_id)


async def by_ids(session: AsyncSession, ids: Sequence[uuid.UUID], *, condition: Condition | None,
                 publisher_ids: Sequence[uuid.UUID]) -> list[Listing]:
    if not ids:
        return []
    rows = await session.scalars(select(Listing).where(Listing.id.in_(ids), visible(condition, publisher_ids)))
    return list(rows)


async def by_slugs(session: AsyncSession, slugs: Sequence[str], *, condition: Condition | None,
                   publisher_ids: Sequence[uuid.UUID]) -> list[Listing]:
    if not slugs:
        return []
    rows = await session.scalars(select(Listing).where(Listing.slug.in_(slugs), visible(condition, publisher_ids)))
    return list(rows)


async def slug_taken(session: AsyncSession, slug: str) -> bool:
    return await session.scalar(select(Listing.id).where(Listing.slug == slug)) is not None


async def add(session: AsyncSession, listing: Listing) -> bool:
    """Insert; False when the slug was taken meanwhile (the unique index decides)."""
    return await insert_unless_conflict(session, listing)


async def transition(session: AsyncSession, listing_id: uuid.UUID, *, from_: Sequence[str], to: str,
                     **values: Any) -> bool:
    """Guarded state change: only from one of ``from_``; False when the listing was elsewhere."""
    result = await session.execute(
        update(Listing).where(Listing.id == listing_id, Listing.status.in_(from_))
        .values(status=to, revision=Listing.revision + 1, updated_at=values.pop("at"), **values)
        .returning(Listing.id).execution_options(synchronize_session=False))
    changed = result.first() is not None
    if changed:
        await _expire(session, listing_id)
    return changed


async def touch(session: AsyncSession, listing_id: uuid.UUID, *, at: datetime, **values: Any) -> None:
    """Set fields and bump the revision (what ETags and sync follow)."""
    await session.execute(update(Listing).where(Listing.id == listing_id)
                          .values(revision=Listing.revision + 1, updated_at=at, **values)
                          .execution_options(synchronize_session=False))
    await _expire(session, listing_id)


async def add_to_counters(session: AsyncSession, listing_id: uuid.UUID, **increments: int) -> None:
    """``download_count=1`` and the like, as one guarded increment (no read-modify-write).
    Counters do not bump the revision: they change too often to invalidate caches."""
    values = {name: getattr(Listing, name) + amount for name, amount in increments.items()}
    await session.execute(update(Listing).where(Listing.id == listing_id).values(**values)
                          .execution_options(synchronize_session=False))


async def add_rating(session: AsyncSession, listing_id: uuid.UUID, *, count: int, total: int, at: datetime) -> None:
    """Move the rating count and sum together and recompute the average in the same statement."""
    new_count = Listing.rating_count + count
    new_sum = Listing.rating_sum + total
    await session.execute(update(Listing).where(Listing.id == listing_id).values(
        rating_count=new_count, rating_sum=new_sum,
        # numeric for round(x, 2): PostgreSQL has no round(double precision, int)
        rating_average=func.coalesce(func.round(cast(cast(new_sum, Float) / func.nullif(new_count, 0), Numeric), 2),
                                     0.0),
        revision=Listing.revision + 1, updated_at=at).execution_options(synchronize_session=False))
    await _expire(session, listing_id)


async def _expire(session: AsyncSession, listing_id: uuid.UUID) -> None:
    """After a statement changed a listing's row: reload the object this session holds, and
    evict its cached page once the transaction commits."""
    evict_details(session, listing_id)
    await refresh_if_held(session, Listing, listing_id)


def evict_details(session: AsyncSession, *listing_ids: uuid.UUID) -> None:
    """Evict these listings' cached details once the transaction commits (every writer of
    something a detail shows calls this or :func:`evict_details_of`; the stored documents
    are cleared by the database's triggers)."""
    evict_after_commit(session, *cache_keys(*listing_ids))


async def evict_details_of(session: AsyncSession, *, publisher_id: uuid.UUID | None = None,
                           category_id: uuid.UUID | None = None) -> list[uuid.UUID]:
    """Evict the cached details of a publisher's or a category's listings (they show its
    name, badge or category) once the transaction commits; returns their ids."""
    statement = select(Listing.id)
    if publisher_id is not None:
        statement = statement.where(Listing.publisher_id == publisher_id)
    if category_id is not None:
        statement = statement.where(Listing.category_id == category_id)
    ids = list(await session.scalars(statement))
    evict_details(session, *ids)
    return ids


async def of_publisher(session: AsyncSession, publisher_id: uuid.UUID, *, condition: Condition | None,
                       member_of: Sequence[uuid.UUID], after: tuple[datetime, uuid.UUID] | None,
                       limit: int) -> list[Listing]:
    statement = select(Listing).where(Listing.publisher_id == publisher_id, visible(condition, member_of))
    return list(await session.scalars(after_key(statement, Listing.created_at, Listing.id, after, limit)))


async def related(session: AsyncSession, listing: Listing, *, limit: int = 6) -> list[Listing]:
    if listing.category_id is None:
        return []
    rows = await session.scalars(
        select(Listing).where(Listing.category_id == listing.category_id, Listing.id != listing.id,
                              Listing.status == "published")
        .order_by((Listing.download_count + Listing.install_count).desc(), Listing.id).limit(limit))
    return list(rows)


async def publishers(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, Publisher]:
    if not ids:
        return {}
    return {p.id: p for p in await session.scalars(select(Publisher).where(Publisher.id.in_(ids)))}


# --- stock (M9, INV-5): reserved and returned by orders through catalog.service -------------------

async def reserve_stock(session: AsyncSession, listing_id: uuid.UUID, quantity: int) -> bool:
    """Take ``quantity`` units of a listing's stock, never below zero (one guarded statement,
    so concurrent buyers can never oversell). False, changing nothing, when there are fewer."""
    result = await session.execute(
        update(Listing).where(Listing.id == listing_id, Listing.stock.is_not(None), Listing.stock >= quantity)
        .values(stock=Listing.stock - quantity).returning(Listing.id)
        .execution_options(synchronize_session=False))
    taken = result.first() is not None
    if taken:
        evict_details(session, listing_id)  # the detail shows the stock
        await refresh_if_held(session, Listing, listing_id)
    return taken


async def return_stock(session: AsyncSession, listing_id: uuid.UUID, quantity: int) -> None:
    await session.execute(update(Listing).where(Listing.id == listing_id, Listing.stock.is_not(None))
                          .values(stock=Listing.stock + quantity).execution_options(synchronize_session=False))
    evict_details(session, listing_id)
    await refresh_if_held(session, Listing, listing_id)


# --- categories -------------------------------------------------------------------------------

async def categories(session: AsyncSession) -> list[Category]:
    return list(await session.scalars(select(Category).order_by(Category.position, Category.name)))


async def categories_by_id(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, Category]:
    if not ids:
        return {}
    return {c.id: c for c in await session.scalars(select(Category).where(Category.id.in_(ids)))}


async def category_by_slug(session: AsyncSession, slug: str) -> Category | None:
    return await session.scalar(select(Category).where(Category.slug == slug))


async def add_category(session: AsyncSession, category: Category) -> bool:
    return await insert_unless_conflict(session, category)


async def category_in_use(session: AsyncSession, category_id: uuid.UUID) -> bool:
    return await session.scalar(select(Listing.id).where(Listing.category_id == category_id).limit(1)) is not None


async def delete_category(session: AsyncSession, category_id: uuid.UUID) -> None:
    await session.execute(delete(Category).where(Category.id == category_id))


async def any_category(session: AsyncSession) -> bool:
    return await session.scalar(select(Category.id).limit(1)) is not None


# --- daily stats ------------------------------------------------------------------------------

async def add_daily(session: AsyncSession, listing_id: uuid.UUID, day: date, **increments: int) -> None:
    """Upsert-increment one listing's counters for one day."""
    dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
    insert = dialect.insert(ListingDailyStat).values(listing_id=listing_id, day=day, **increments)
    await session.execute(insert.on_conflict_do_update(
        index_elements=[ListingDailyStat.listing_id, ListingDailyStat.day],
        set_={name: getattr(ListingDailyStat, name) + getattr(insert.excluded, name) for name in increments}))


async def daily_stats(session: AsyncSession, listing_ids: Sequence[uuid.UUID], *, since: date,
                      until: date) -> list[ListingDailyStat]:
    if not listing_ids:
        return []
    rows = await session.scalars(select(ListingDailyStat).where(
        ListingDailyStat.listing_id.in_(listing_ids), ListingDailyStat.day >= since, ListingDailyStat.day <= until)
        .order_by(ListingDailyStat.day, ListingDailyStat.listing_id))
    return list(rows)


async def ids_of_publisher(session: AsyncSession, publisher_id: uuid.UUID) -> list[tuple[uuid.UUID, str]]:
    rows = await session.execute(select(Listing.id, Listing.slug).where(Listing.publisher_id == publisher_id)
                                 .order_by(Listing.slug))
    return [(row[0], row[1]) for row in rows]



async def most_popular_in_category(session: AsyncSession, category_id: uuid.UUID, *, limit: int) -> list[Listing]:
    """Published listings of a category, most downloaded and installed first (what
    :func:`related` picks from)."""
    rows = await session.scalars(
        select(Listing).where(Listing.category_id == category_id, Listing.status == "published")
        .order_by((Listing.download_count + Listing.install_count).desc(), Listing.id).limit(limit))
    return list(rows)


async def for_admin(session: AsyncSession, *, text: str | None, status: str | None, limit: int) -> list[Listing]:
    """Every listing whatever its state (the admin console), newest first, by slug or name."""
    statement = select(Listing)
    if text:
        pattern = f"%{text.lower()}%"
        statement = statement.where(or_(func.lower(Listing.slug).like(pattern), func.lower(Listing.name).like(pattern)))
    if status:
        statement = statement.where(Listing.status == status)
    rows = await session.scalars(statement.order_by(Listing.updated_at.desc(), Listing.id.desc()).limit(limit))
    return list(rows)


async def search_generation(session: AsyncSession) -> int | None:
    """The search index's generation: redrawn in the transaction of every change to the index."""
    return await session.scalar(text("SELECT generation FROM listing_search_state"))  # type: ignore[no-any-return]
