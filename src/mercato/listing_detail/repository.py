"""The stored detail documents (models/catalog.py ListingDocument and CategoryDocument,
migration 0012): a published listing's rendered detail and its category's rendered
listings, which the database's triggers clear whenever something they show changes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mercato.models import CategoryDocument, ListingDocument

_DOCUMENT_QUERY = ("SELECT d.listing_id, d.head, d.built_at_ms, d.category_id, c.items, c.built_at_ms "
                   "FROM listing_documents d LEFT JOIN category_documents c ON c.category_id = d.category_id "
                   "WHERE d.{column} = {placeholder}")
_DOCUMENT_QUERIES = {
    (dialect, column): _DOCUMENT_QUERY.format(column=column, placeholder="$1" if dialect == "postgresql" else "?")
    for dialect in ("postgresql", "sqlite") for column in ("listing_id", "slug")
}


@dataclass(frozen=True)
class StoredDocument:
    listing_id: uuid.UUID
    head: str | None
    built_at_ms: int | None
    category_id: uuid.UUID | None
    items: str | None  # the category's rendered listings, ``id<TAB>json`` per line
    items_built_at_ms: int | None


def _as_uuid(value: Any) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    return uuid.UUID(str(value))  # asyncpg's own UUID type, or SQLite's 32 hex digits


async def read_document(engine: AsyncEngine, key: str) -> StoredDocument | None:
    """A listing's stored document and its category's, by id or slug: one indexed statement on
    the driver's own connection (no ORM, no transaction: a single statement reads one snapshot)."""
    try:
        listing_id: uuid.UUID | None = uuid.UUID(key)
    except ValueError:
        listing_id = None
    dialect = engine.dialect.name
    sql = _DOCUMENT_QUERIES[(dialect, "listing_id" if listing_id else "slug")]
    async with engine.connect() as connection:
        driver = (await connection.get_raw_connection()).driver_connection
        if dialect == "postgresql":
            row = await driver.fetchrow(sql, listing_id or key.lower())
        else:
            cursor = await driver.execute(sql, (listing_id.hex if listing_id else key.lower(),))
            try:
                row = await cursor.fetchone()
            finally:
                await cursor.close()
    if row is None:
        return None
    return StoredDocument(_as_uuid(row[0]), row[1], row[2], _as_uuid(row[3]), row[4], row[5])  # type: ignore[arg-type]


async def document_generation(session: AsyncSession, key: str) -> int | None:
    """The generation of a listing's document, read before the listing itself is (see
    :func:`store_listing_document`)."""
    try:
        clause = ListingDocument.listing_id == uuid.UUID(key)
    except ValueError:
        clause = ListingDocument.slug == key.lower()
    return await session.scalar(select(ListingDocument.generation).where(clause))  # type: ignore[no-any-return]


async def category_generation(session: AsyncSession, category_id: uuid.UUID) -> int | None:
    return await session.scalar(  # type: ignore[no-any-return]
        select(CategoryDocument.generation).where(CategoryDocument.category_id == category_id))


async def store_listing_document(session: AsyncSession, listing_id: uuid.UUID, *, generation: int, head: str,
                                 category_id: uuid.UUID | None, built_at_ms: int) -> bool:
    """Keep a rendering only if no change bumped the generation since it was read: a change
    committed meanwhile is never hidden behind an older rendering."""
    result = await session.execute(
        update(ListingDocument).where(ListingDocument.listing_id == listing_id,
                                      ListingDocument.generation == generation)
        .values(head=head, category_id=category_id, built_at_ms=built_at_ms)
        .execution_options(synchronize_session=False))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def store_category_document(session: AsyncSession, category_id: uuid.UUID, *, generation: int, items: str,
                                  built_at_ms: int) -> bool:
    result = await session.execute(
        update(CategoryDocument).where(CategoryDocument.category_id == category_id,
                                       CategoryDocument.generation == generation)
        .values(items=items, built_at_ms=built_at_ms).execution_options(synchronize_session=False))
    return bool(result.rowcount)  # type: ignore[attr-defined]
