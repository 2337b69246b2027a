"""``/notifications`` (WEB.md; PRODUCT U1, O5): the in-store inbox; the layout's header shows
the unread count on every page (``session.PageUser.unread``). Opening a notification marks
it read and follows its link (a page of this site)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Request
from starlette.responses import Response

from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.kit.pagination import CursorParam, decode_cursor, keyset_page
from mercato.notifications import service as notifications
from mercato.platform.routing import ReadSession, WriteSession
from mercato.web.pages import page_router, redirect, render
from mercato.web.permits import permitted
from mercato.web.session import safe_next

router = page_router()

Recipient = Annotated[Principal, permitted(Permission.notification_read)]


@router.get("/notifications", name="notifications_page")
async def notifications_page(request: Request, actor: Recipient, session: ReadSession,
                             cursor: CursorParam = None, unread: bool = False) -> Response:
    rows = await notifications.inbox(session, actor.user_id, unread_only=unread, after=decode_cursor(cursor),
                                     limit=21)
    page, next_cursor = keyset_page(rows, 20)
    return await render(request, "buyer/notifications.html", {
        "notifications": page, "unread_only": unread,
        "unread_count": await notifications.unread_count(session, actor.user_id),
        "next_cursor": next_cursor})


@router.post("/notifications/read-all", name="notifications_read_all")
async def notifications_read_all(actor: Recipient, session: WriteSession) -> Response:
    await notifications.mark_all_read(session, user_id=actor.user_id)
    return redirect("/notifications")


@router.post("/notifications/{notification_id}/read", name="notification_read")
async def notification_read(notification_id: uuid.UUID, actor: Recipient, session: WriteSession) -> Response:
    """Mark it read and open what it is about (its link, when it is a page of this site)."""
    notification = await notifications.mark_read(session, user_id=actor.user_id, notification_id=notification_id)
    return redirect(safe_next(notification.link, default="/notifications"))
