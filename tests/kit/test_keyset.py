"""The shared keyset-pagination helpers (``after_key``, ``keyset_page``) and the get-or-404
(``found``) that repositories, services and endpoints use instead of their own copies."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from mercato.kit.errors import NotFound, found_or_raise
from mercato.kit.pagination import after_key, created_cursor, decode_cursor, keyset_page
from mercato.models import Notification


def _rows(count: int) -> list[SimpleNamespace]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [SimpleNamespace(created_at=start - timedelta(minutes=n), id=uuid.uuid4()) for n in range(count)]


def test_keyset_page_cuts_the_extra_row_and_points_the_cursor_at_the_last_row_shown() -> None:
    rows = _rows(3)
    page, next_cursor = keyset_page(rows, 2)
    assert page == rows[:2]
    assert next_cursor == created_cursor(rows[1])
    assert decode_cursor(next_cursor) == (rows[1].created_at, rows[1].id)


def test_keyset_page_without_the_extra_row_is_the_last_page() -> None:
    rows = _rows(2)
    assert keyset_page(rows, 2) == (rows, None)
    assert keyset_page([], 2) == ([], None)


def test_keyset_page_takes_another_cursor() -> None:
    rows = _rows(2)
    assert keyset_page(rows, 1, lambda row: str(row.id)) == (rows[:1], str(rows[0].id))


def test_after_key_orders_newest_first_and_continues_after_the_position() -> None:
    statement = after_key(select(Notification), Notification.created_at, Notification.id,
                          (datetime(2026, 1, 1, tzinfo=UTC), uuid.uuid4()), 21)
    sql = " ".join(str(statement).split())
    assert "WHERE notifications.created_at < :created_at_1 OR notifications.created_at = :created_at_2 " \
           "AND notifications.id < :id_1" in sql
    assert sql.endswith("ORDER BY notifications.created_at DESC, notifications.id DESC LIMIT :param_1")
    first = str(after_key(select(Notification), Notification.created_at, Notification.id, None, None))
    assert "WHERE" not in first and "LIMIT" not in first


class ThingNotFound(NotFound):
    code, title = "thing_not_found", "No such thing"


def test_found_returns_the_value_or_raises_the_typed_error() -> None:
    assert found_or_raise(0, ThingNotFound, "unused") == 0
    with pytest.raises(ThingNotFound) as raised:
        found_or_raise(None, ThingNotFound, "There is no thing 7.")
    assert (raised.value.status, raised.value.code, raised.value.detail) == (404, "thing_not_found",
                                                                           "There is no thing 7.")
