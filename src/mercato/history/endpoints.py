"""The caller's operation history (O2)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import StringConstraints

from mercato.access.dependencies import requires
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.history import service
from mercato.history.errors import InvalidHistoryRange
from mercato.history.schemas import HistoryEntryRead, HistoryKind, HistoryPage
from mercato.kit.pagination import (
    CursorParam,
    InvalidCursor,
    Limit,
    Total,
    decode_cursor,
    encode_cursor,
    keyset_page,
)
from mercato.kit.schemas import Timestamp
from mercato.platform.routing import ReadSession, TransactionalRoute

router = APIRouter(route_class=TransactionalRoute, tags=["accounts"])


@router.get("/me/history", response_model=HistoryPage, responses=InvalidHistoryRange.responses(InvalidCursor))
async def my_history(
        actor: Annotated[Principal, requires(Permission.history_read)], session: ReadSession,
        type: Annotated[list[HistoryKind] | None, Query(
            description="Only these kinds (repeat the parameter for several).")] = None,
        action: Annotated[
            list[Annotated[str, StringConstraints(pattern=r"^[a-z_]+\.[a-z_]+$", max_length=64)]] | None,
            Query(max_length=20, description="Only these event types, e.g. `order.completed`.")] = None,
        since: Annotated[Timestamp | None, Query(description="From this time on (inclusive).")] = None,
        until: Annotated[Timestamp | None, Query(description="Before this time.")] = None,
        cursor: CursorParam = None, limit: Limit = 20, total: Total = False) -> HistoryPage:
    """What you did and what happened to it, newest first: purchases and orders, refunds,
    payments, your library, reviews you wrote, installs and tasks on your instances, and, for
    publisher members, publishing actions and payouts of your publishers. Entries are kept
    for the store's retention period (30 days unless configured)."""
    rows = await service.of_user(session, user_id=actor.user_id, kinds=type, actions=action, since=since,
                                 until=until, after=decode_cursor(cursor), limit=limit + 1)
    page, next_cursor = keyset_page(rows, limit, lambda entry: encode_cursor(entry.occurred_at, entry.id))
    return HistoryPage(
        items=[HistoryEntryRead.model_validate(entry) for entry in page],
        next_cursor=next_cursor,
        total=await service.count(session, user_id=actor.user_id, kinds=type, actions=action, since=since,
                                  until=until) if total else None)
