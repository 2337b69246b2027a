"""The caller's notification inbox (O5, in-app)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from mercato.access.dependencies import requires
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.kit.pagination import CursorParam, Limit, decode_cursor, keyset_page
from mercato.notifications import service
from mercato.notifications.errors import NotificationNotFound
from mercato.notifications.schemas import Marked, NotificationPage, NotificationRead
from mercato.platform.routing import ReadSession, TransactionalRoute, WriteSession

router = APIRouter(route_class=TransactionalRoute, tags=["notifications"])

Recipient = Annotated[Principal, requires(Permission.notification_read)]


@router.get("/notifications", response_model=NotificationPage)
async def my_notifications(actor: Recipient, session: ReadSession,
                           unread: Annotated[bool, Query(description="Only unread ones.")] = False,
                           cursor: CursorParam = None, limit: Limit = 20) -> NotificationPage:
    """Your notifications, newest first, with the number still unread."""
    rows = await service.inbox(session, actor.user_id, unread_only=unread, after=decode_cursor(cursor),
                               limit=limit + 1)
    page, next_cursor = keyset_page(rows, limit)
    return NotificationPage(items=[NotificationRead.from_model(n) for n in page], next_cursor=next_cursor,
                            unread_count=await service.unread_count(session, actor.user_id))


@router.post("/notifications/read-all", response_model=Marked)
async def read_all(actor: Recipient, session: WriteSession) -> Marked:
    """Mark all your notifications read."""
    return Marked(marked=await service.mark_all_read(session, user_id=actor.user_id))


@router.post("/notifications/{notification_id}/read", response_model=NotificationRead,
             responses=NotificationNotFound.responses())
async def read_one(notification_id: uuid.UUID, actor: Recipient, session: WriteSession) -> NotificationRead:
    """Mark one of your notifications read (marking it again changes nothing)."""
    return NotificationRead.from_model(
        await service.mark_read(session, user_id=actor.user_id, notification_id=notification_id))
