"""Keyset pagination over (timestamp, id): opaque cursors, the repository-side condition and
order (:func:`after_key`) and the endpoint-side cut into a page and its next cursor
(:func:`keyset_page`)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import Query
from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.kit.errors import ValidationFailed

T = TypeVar("T")

Limit = Annotated[int, Query(ge=1, le=100, description="Items per page (1–100).")]
Total = Annotated[bool, Query(description="Also count every matching item (`total` in the answer).")]
CursorParam = Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page.")]


class InvalidCursor(ValidationFailed):
    code, title = "invalid_cursor", "The cursor is not valid"


def encode_cursor(at: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, row_id = json.loads(raw)
        parsed = datetime.fromisoformat(at)
        if parsed.tzinfo is None:
            raise ValueError("naive")
        return parsed, uuid.UUID(row_id)
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise InvalidCursor("Use the next_cursor value from the previous page as it was given.",
                            errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor",
                                     "type": "invalid_cursor"}]) from exc


def after_key(statement: Select[Any], at: ColumnElement[Any], row_id: ColumnElement[Any],
              after: tuple[Any, uuid.UUID] | None, limit: int | None) -> Select[Any]:
    """``statement`` newest first by (``at``, ``row_id``), from the row after the keyset position
    ``after`` (the last row of the previous page) on, at most ``limit`` rows (None: all of them).
    Endpoints ask for one row more than they show and cut it off with :func:`keyset_page`."""
    if after is not None:
        statement = statement.where(after_position(at, row_id, after))
    return statement.order_by(at.desc(), row_id.desc()).limit(limit)


def after_position(at: ColumnElement[Any], row_id: ColumnElement[Any],
                   after: tuple[Any, uuid.UUID]) -> ColumnElement[bool]:
    """Rows that come after the position ``after`` in newest-first (``at``, ``row_id``) order."""
    last_at, last_id = after
    return or_(at < last_at, and_(at == last_at, row_id < last_id))


def created_cursor(row: Any) -> str:
    """The cursor of a row paged by (created_at, id), the most common keyset."""
    return encode_cursor(row.created_at, row.id)


def keyset_page(rows: Sequence[T], limit: int, cursor_of: Callable[[T], str] = created_cursor,
                ) -> tuple[list[T], str | None]:
    """The page shown and the cursor of the next one (None: this is the last) out of ``rows``
    fetched with ``limit + 1``: the extra row only tells that there is more."""
    page = list(rows[:limit])
    return page, cursor_of(page[-1]) if len(rows) > limit else None


async def count_matching(session: AsyncSession, statement: Select[Any]) -> int:
    """How many rows a filtered (not yet paged) select matches."""
    return int(await session.scalar(select(func.count()).select_from(statement.order_by(None).subquery())) or 0)


SortKey = tuple[str | int, ...]


def encode_key_cursor(key: SortKey) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def page_of(items: Sequence[T], *, key: Callable[[T], SortKey], cursor: str | None, limit: int,
            descending: bool = False) -> tuple[list[T], str | None]:
    """One page of a small, bounded collection read whole (roles, permissions, categories, a
    person's tokens, market sources), ordered by ``key`` (unique per item) and cut after the
    cursor's key: the same ``{items, next_cursor}`` contract as the keyset-paged lists, and an
    item removed between pages shifts nothing."""
    ordered = sorted(items, key=key, reverse=descending)
    if cursor:
        after = _decode_key(cursor)
        try:
            ordered = [item for item in ordered if (key(item) < after if descending else key(item) > after)]
        except TypeError as exc:  # a forged cursor whose parts have the wrong types
            raise _invalid_cursor() from exc
    page = ordered[:limit]
    return page, encode_key_cursor(key(page[-1])) if len(ordered) > limit else None


def _decode_key(cursor: str) -> SortKey:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError) as exc:
        raise _invalid_cursor() from exc
    if not isinstance(raw, list) or not raw or not all(isinstance(part, (str, int)) and not isinstance(part, bool)
                                                       for part in raw):
        raise _invalid_cursor()
    return tuple(raw)


def _invalid_cursor() -> InvalidCursor:
    return InvalidCursor("Use the next_cursor value from the previous page as it was given.",
                         errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "invalid_cursor"}])
