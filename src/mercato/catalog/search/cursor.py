"""Listing sorts and keyset pages: the sort keys, the condition "after this key", and the
cursor codec (``next_cursor`` carries the last key of a page and the sort it belongs to)."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from mercato.catalog.search.sql import as_uuid
from mercato.kit.pagination import InvalidCursor


@dataclass(frozen=True)
class SortKey:
    expression: str  # over listings aliased ``l``
    kind: Literal["int", "float", "time", "id"]


#: Listing sorts: every key of a sort has the same direction, ties broken by id.
LISTING_SORTS: dict[str, tuple[bool, tuple[SortKey, ...]]] = {  # sort → (descending, keys)
    "popular": (True, (SortKey("(l.download_count + l.install_count)", "int"), SortKey("l.id", "id"))),
    "rating": (True, (SortKey("l.rating_average", "float"), SortKey("l.rating_count", "int"),
                      SortKey("l.id", "id"))),
    "newest": (True, (SortKey("COALESCE(l.published_at, l.created_at)", "time"), SortKey("l.id", "id"))),
    "price": (False, (SortKey("l.sort_price", "int"), SortKey("l.id", "id"))),
}


def keyset_after(expressions: list[str], *, descending: bool, prefix: str = "k") -> str:
    """``(a, b, c)`` strictly after the cursor ``(:k0, :k1, :k2)`` in the sort order, written so
    that an index on (a, b, c) serves it on both databases: ``a <= :k0 AND (a < :k0 OR (…))``."""
    op, op_eq = ("<", "<=") if descending else (">", ">=")
    clause = f"{expressions[-1]} {op} :{prefix}{len(expressions) - 1}"
    for index in range(len(expressions) - 2, -1, -1):
        column, param = expressions[index], f":{prefix}{index}"
        clause = f"{column} {op_eq} {param} AND ({column} {op} {param} OR {clause})"
    return f"({clause})"


def encode_cursor(sort: str, key: list[Any]) -> str:
    values = [value.isoformat() if isinstance(value, datetime) else
              str(value) if isinstance(value, uuid.UUID) else value for value in key]
    raw = json.dumps({"s": sort, "k": values}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, sort: str, kinds: tuple[str, ...]) -> list[Any] | None:
    """The key a cursor points after, checked against the sort it must belong to."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
        if not isinstance(payload, dict) or payload.get("s") != sort:
            raise ValueError("cursor of another sort")
        values = payload["k"]
        if not isinstance(values, list) or len(values) != len(kinds):
            raise ValueError("wrong key length")
        return [_decode_value(value, kind) for value, kind in zip(values, kinds, strict=True)]
    except (ValueError, TypeError, KeyError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidCursor(
            "Use the next_cursor value from the previous page as it was given, with the same sort.",
            errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "invalid_cursor"}]) from exc


def _decode_value(value: Any, kind: str) -> Any:
    if kind == "int":
        if type(value) is not int:
            raise TypeError("not an integer")
        return value
    if kind == "float":
        if type(value) not in (int, float):
            raise TypeError("not a number")
        return float(value)
    if kind == "time":
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("naive")
        return parsed
    if kind == "id":
        return uuid.UUID(value)
    raise ValueError(kind)


def key_value(value: Any, kind: str) -> Any:
    """A sort key value as read from the database, in the form the cursor keeps."""
    if value is None:
        return None
    if kind == "id":
        return as_uuid(value)
    if kind == "float":
        return float(value)
    if kind == "int":
        return int(value)
    return value
