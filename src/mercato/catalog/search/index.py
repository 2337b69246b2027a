"""What the search index holds of a listing: its fields' tokens with their weights, its
exact-match keys and its facet combination; and which database objects are the index's
(not models, so Alembic's autogenerate leaves them alone)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Row

from mercato.catalog.search.query import exact_key, tokens
from mercato.catalog.search.sql import as_uuid, json_list

#: Indexed fields, in FTS5 column order, with their weights (SQLite bm25) and tsvector labels
#: (PostgreSQL; A weighs most).
FIELDS: tuple[tuple[str, float, str], ...] = (
    ("name", 10.0, "A"),
    ("slug", 8.0, "A"),
    ("tags", 5.0, "B"),
    ("summary", 3.0, "C"),
    ("publisher", 3.0, "C"),
    ("description", 1.0, "D"),
)


@dataclass(frozen=True)
class Combination:
    """The facet attributes of a listing: one row of ``listing_search_facets``."""

    kind: str
    category_id: uuid.UUID | None
    free: bool
    delivery: str
    platforms: tuple[str, ...]  # sorted, distinct

    @property
    def key(self) -> str:
        return json.dumps([self.kind, self.category_id and str(self.category_id), self.free, self.delivery,
                           list(self.platforms)], separators=(",", ":"))

    @property
    def platforms_json(self) -> str:
        return json.dumps(list(self.platforms), separators=(",", ":"))


@dataclass(frozen=True)
class Document:
    listing_id: uuid.UUID
    publisher_id: uuid.UUID
    combination: Combination
    name_key: str
    slug_key: str
    fields: dict[str, list[str]]  # field → tokens

    def field_text(self, name: str) -> str:
        return " ".join(self.fields[name])


#: The columns of a listing (and its publisher) that indexing reads.
DOCUMENT_COLUMNS = (
    "l.id, l.status, l.kind, l.category_id, l.sort_price, l.delivery, l.platforms, l.publisher_id, "
    "l.name, l.slug, l.tags, l.summary, l.description, p.name AS publisher_name, p.slug AS publisher_slug"
)


def document_from_row(row: Row[Any]) -> Document:
    """Build a document from a row selected with :data:`DOCUMENT_COLUMNS`."""
    m = row._mapping
    platforms = tuple(sorted({str(p) for p in json_list(m["platforms"])}))
    combination = Combination(kind=m["kind"], category_id=m["category_id"] and as_uuid(m["category_id"]),
                              free=int(m["sort_price"] or 0) == 0, delivery=m["delivery"], platforms=platforms)
    fields = {
        "name": tokens(m["name"] or ""),
        "slug": tokens(m["slug"] or ""),
        "tags": tokens(" ".join(str(tag) for tag in json_list(m["tags"]))),
        "summary": tokens(m["summary"] or ""),
        "publisher": tokens(f"{m['publisher_name'] or ''} {m['publisher_slug'] or ''}"),
        "description": tokens(m["description"] or ""),
    }
    return Document(listing_id=as_uuid(m["id"]), publisher_id=as_uuid(m["publisher_id"]), combination=combination,
                    name_key=exact_key(m["name"] or ""), slug_key=exact_key(m["slug"] or ""), fields=fields)


def autogenerate_includes(name: str | None, type_: str, _parents: dict[str, str | None]) -> bool:
    """Alembic ``include_name``: autogenerate leaves alone what has no model on purpose, the
    search index's tables (FTS5 and its shadow tables included) and the listing sort indexes
    of migration 0005."""
    if type_ == "table" and name and name.startswith("listing_search"):
        return False
    return not (type_ == "index" and name and name.startswith("ix_listings_search_"))
