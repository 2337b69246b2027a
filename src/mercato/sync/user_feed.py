"""The user's own state as a feed (S2): library (entitlements, revoked ones included),
orders, notifications, installations and tasks changed since a cursor.

Each kind is read in (change time, id) order after its own position; the cursor holds the
positions of every kind. A row's change time is its ``updated_at`` (orders, installations,
tasks), the later of granted/revoked (entitlements) or of created/read (notifications).
Timestamps are taken before a transaction commits, so a change committed late can carry a
time a little before one already seen: positions therefore never move past "now minus
SETTLE_SECONDS", and changes in that window come again on the next poll (clients upsert by
id, so a repeat is harmless). Once the window has passed, the answer is stable and an
unchanged poll gets 304.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.installs.schemas import InstallationRead, TaskRead
from mercato.kit.clock import utcnow
from mercato.library.schemas import EntitlementRead
from mercato.notifications.schemas import NotificationRead
from mercato.orders import service as orders
from mercato.sync import cursor as opaque
from mercato.sync import repository
from mercato.sync.repository import Position
from mercato.sync.schemas import UserSyncPage

SETTLE_SECONDS = 5.0
VERSION = 1
Since = Callable[..., Awaitable[list[tuple[Any, datetime]]]]
Present = Callable[[AsyncSession, list[Any]], Awaitable[Sequence[BaseModel]]]


async def _each(model: type[BaseModel], rows: list[Any]) -> list[BaseModel]:
    return [model.model_validate(row) for row in rows]


async def _entitlements(_session: AsyncSession, rows: list[Any]) -> list[BaseModel]:
    return [EntitlementRead.from_model(row) for row in rows]


async def _notifications(_session: AsyncSession, rows: list[Any]) -> list[BaseModel]:
    return [NotificationRead.from_model(row) for row in rows]


async def _installations(_session: AsyncSession, rows: list[Any]) -> list[BaseModel]:
    return await _each(InstallationRead, rows)


async def _tasks(_session: AsyncSession, rows: list[Any]) -> list[BaseModel]:
    return await _each(TaskRead, rows)


@dataclass(frozen=True)
class Kind:
    field: str  # the answer's field
    key: str  # its position's key in the cursor
    since: Since
    present: Present


KINDS: tuple[Kind, ...] = (
    Kind("library", "l", repository.entitlements_since, _entitlements),
    Kind("orders", "o", repository.orders_since, orders.present),  # type: ignore[arg-type]
    Kind("notifications", "n", repository.notifications_since, _notifications),
    Kind("installations", "i", repository.installations_since, _installations),
    Kind("tasks", "t", repository.tasks_since, _tasks),
)


def encode_cursor(positions: dict[str, Position | None]) -> str:
    return opaque.encode({"v": VERSION, "p": {key: [at.isoformat(), str(row_id)]
                                              for key, (at, row_id) in sorted(
                                                  (k, p) for k, p in positions.items() if p is not None)}})


def decode_cursor(text: str | None) -> dict[str, Position | None] | None:
    if not text:
        return None
    document = opaque.decode(text)
    try:
        if not isinstance(document, dict) or document.get("v") != VERSION or not isinstance(document.get("p"), dict):
            raise ValueError("shape")
        positions: dict[str, Position | None] = {kind.key: None for kind in KINDS}
        for key, (at, row_id) in document["p"].items():
            if key not in positions:
                raise ValueError(key)
            moment = datetime.fromisoformat(at)
            if moment.tzinfo is None:
                raise ValueError("naive")
            positions[key] = (moment, uuid.UUID(row_id))
        return positions
    except (ValueError, TypeError, AttributeError) as exc:
        raise opaque.invalid() from exc


async def page(session: AsyncSession, *, user_id: uuid.UUID, positions: dict[str, Position | None] | None,
               limit: int, now: datetime | None = None) -> UserSyncPage:
    reset = positions is None
    held = positions or {kind.key: None for kind in KINDS}
    settled: Position = ((now or utcnow()) - timedelta(seconds=SETTLE_SECONDS), uuid.UUID(int=0))
    out: dict[str, Any] = {}
    moved: dict[str, Position | None] = {}
    more = False
    for kind in KINDS:
        old = held.get(kind.key)
        rows = await kind.since(session, user_id, old, limit=limit + 1)
        shown = rows[:limit]
        if len(rows) > limit:  # a full page: go on from its last row
            more = True
            moved[kind.key] = (shown[-1][1], shown[-1][0].id)
        elif shown:
            last: Position = (shown[-1][1], shown[-1][0].id)
            capped = min(last, settled)
            moved[kind.key] = capped if old is None or capped > old else old
        else:
            moved[kind.key] = old
        out[kind.field] = list(await kind.present(session, [row for row, _at in shown]))
    return UserSyncPage(**out, cursor=encode_cursor(moved), reset=reset, more=more)
