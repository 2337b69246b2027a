"""Opaque cursors for keyset pagination over (timestamp, id)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.kit.errors import ValidationFailed

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
                            errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "invalid_cursor"}]) from exc


async def count_matching(session: AsyncSession, statement: Select[Any]) -> int:
    """How many rows a filtered (not yet paged) select matches."""
    return int(await session.scalar(select(func.count()).select_from(statement.order_by(None).subquery())) or 0)
