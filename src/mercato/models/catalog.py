"""The shelf: categories and listings, their daily statistics and stored detail documents.

States follow DOMAIN.md. Counters (downloads, installs, sales, ratings) live on the listing
so that detail, search and sort read one row; they move only by guarded ``UPDATE … SET n = n + 1``.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mercato.models.base import Base, IdMixin, JSONType, TimestampMixin


class Category(IdMixin, TimestampMixin, Base):
    __tablename__ = "categories"

    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    position: Mapped[int] = mapped_column(Integer, default=0)


class Listing(IdMixin, TimestampMixin, Base):
    """An app, plugin or game on sale.

    Offers are columns, not a table: a listing is sold digitally (``digital_price``), as a
    physical copy (``physical_price`` with ``stock``), or both; a null price means "not
    offered that way". Prices are integer minor units of ``currency``.
    """

    __tablename__ = "listings"

    slug: Mapped[str] = mapped_column(String(64), unique=True)
    publisher_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("publishers.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16), index=True)  # app | plugin | game
    # draft | in_review | published | rejected | changes_requested | delisted | suspended
    status: Mapped[str] = mapped_column(String(24), default="draft", index=True)
    status_before_suspension: Mapped[str | None] = mapped_column(String(24))
    suspension_reason: Mapped[str | None] = mapped_column(Text)
    category_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("categories.id", ondelete="SET NULL"),
                                                          index=True)
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    summary: Mapped[str] = mapped_column(String(140), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    homepage: Mapped[str | None] = mapped_column(String(500))
    license: Mapped[str | None] = mapped_column(String(100))
    icon_url: Mapped[str | None] = mapped_column(String(500))
    screenshots: Mapped[list[str]] = mapped_column(JSONType, default=list)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    digital_price: Mapped[int | None] = mapped_column(BigInteger)
    physical_price: Mapped[int | None] = mapped_column(BigInteger)
    stock: Mapped[int | None] = mapped_column(Integer)
    # The lowest price offered, for the price filter and sort.
    sort_price: Mapped[int] = mapped_column(BigInteger, default=0, index=True)
    # digital | physical | both
    delivery: Mapped[str] = mapped_column(String(16), default="digital")
    # From the latest approved version: what search filters on.
    platforms: Mapped[list[str]] = mapped_column(JSONType, default=list)
    latest_version_id: Mapped[uuid.UUID | None]
    latest_version: Mapped[str | None] = mapped_column(String(100))
    rating_count: Mapped[int] = mapped_column(Integer, default=0)
    rating_sum: Mapped[int] = mapped_column(Integer, default=0)
    # rating_sum / rating_count kept beside them so sorting by rating is an index scan.
    rating_average: Mapped[float] = mapped_column(default=0.0)
    download_count: Mapped[int] = mapped_column(BigInteger, default=0)
    install_count: Mapped[int] = mapped_column(BigInteger, default=0)
    sale_count: Mapped[int] = mapped_column(BigInteger, default=0)
    published_at: Mapped[datetime | None] = mapped_column(index=True)
    # Bumped on every change a client could see (sync, ETags).
    revision: Mapped[int] = mapped_column(Integer, default=1)


class ListingDailyStat(Base):
    """Per listing per UTC day: what the publisher dashboard charts (P6)."""

    __tablename__ = "listing_daily_stats"

    listing_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("listings.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    downloads: Mapped[int] = mapped_column(BigInteger, default=0)
    installs: Mapped[int] = mapped_column(BigInteger, default=0)
    sales: Mapped[int] = mapped_column(BigInteger, default=0)
    revenue: Mapped[int] = mapped_column(BigInteger, default=0)
    ratings: Mapped[int] = mapped_column(Integer, default=0)
    rating_sum: Mapped[int] = mapped_column(Integer, default=0)


# --- stored detail documents (the read model of GET /listings/{id}) --------------------------------
# Rendered pieces of a listing's public detail, read by primary key (or slug) in one statement
# without the ORM. Database triggers (migration 0012) bump ``generation`` and clear the
# rendered text on every change that shows, whoever writes it (catalog, orders' stock,
# publishers, categories, versions, reviews); a reader stores what it rendered only if the
# generation it saw before reading is still current, so a concurrent change is never
# overwritten by an older rendering.

class ListingDocument(Base):
    """A listing's detail without its related listings (``head``: the JSON text up to
    ``"related":``), rendered while the listing was published."""

    __tablename__ = "listing_documents"

    listing_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("listings.id", ondelete="CASCADE"), primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    category_id: Mapped[uuid.UUID | None]
    generation: Mapped[int] = mapped_column(BigInteger, default=0)
    head: Mapped[str | None] = mapped_column(Text)
    built_at_ms: Mapped[int | None] = mapped_column(BigInteger)  # epoch milliseconds


class CategoryDocument(Base):
    """The most popular published listings of a category, rendered (one ``id<TAB>json`` line
    each): the "related" part of every detail in the category."""

    __tablename__ = "category_documents"

    category_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("categories.id", ondelete="CASCADE"),
                                                   primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)
    items: Mapped[str | None] = mapped_column(Text)
    built_at_ms: Mapped[int | None] = mapped_column(BigInteger)
