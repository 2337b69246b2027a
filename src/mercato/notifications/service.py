"""In-store notifications (O5, in-app part; P5 for publishers).

Handlers turn events into notifications with :func:`notify`: one row per (recipient,
event), inserted at most once however often the event is delivered. Each new row then
goes through :func:`deliver`, the seam for delivery channels. Today there is one: the
in-app channel, which announces the row as ``notification.created`` (with ``user_id``, so
the recipient's live stream pushes it). E-mail is not a channel here: the
``notifications.email`` subscriber sends the e-mailed kinds after the notification's
transaction committed, reacting to ``notification.created`` (see ``email.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus.events import CloudEvent
from mercato.bus.outbox import publish
from mercato.kit.clock import utcnow
from mercato.kit.errors import found_or_raise
from mercato.models import Notification
from mercato.notifications import repository
from mercato.notifications.errors import NotificationNotFound


class Channel(Protocol):
    """A way a notification reaches its recipient, run in the transaction that created it
    (so a channel that talks to the outside should only enqueue: publish an event or
    write an outbox row, never send from here)."""

    name: str

    async def deliver(self, session: AsyncSession, notification: Notification) -> None: ...


class InAppChannel:
    """The inbox itself: the row is already there; announce it to live streams."""

    name = "in_app"

    async def deliver(self, session: AsyncSession, notification: Notification) -> None:
        await publish(session, CloudEvent(type="notification.created", subject=str(notification.id), data={
            "notification_id": str(notification.id), "user_id": str(notification.user_id),
            "kind": notification.kind, "title": notification.title}))


CHANNELS: list[Channel] = [InAppChannel()]


async def deliver(session: AsyncSession, notification: Notification) -> None:
    for channel in CHANNELS:
        await channel.deliver(session, notification)


async def notify(session: AsyncSession, *, event_id: uuid.UUID, user_ids: Iterable[uuid.UUID], kind: str,
                 title: str, body: str = "", link: str | None = None,
                 data: dict[str, Any] | None = None) -> list[Notification]:
    """Notify each user once for this event; a repeat (redelivery) notifies nobody again.
    Returns the notifications created now."""
    now = utcnow()
    rows = [{"id": uuid.uuid4(), "user_id": user_id, "event_id": event_id, "kind": kind, "title": title[:200],
             "body": body, "link": link, "data": data or {}, "created_at": now, "read_at": None}
            for user_id in dict.fromkeys(user_ids)]
    created = await repository.add_once(session, rows)
    for notification in created:
        await deliver(session, notification)
    return created


# --- the recipient's inbox ----------------------------------------------------------------------

async def inbox(session: AsyncSession, user_id: uuid.UUID, *, unread_only: bool,
                after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[Notification]:
    return await repository.inbox(session, user_id, unread_only=unread_only, after=after, limit=limit)


async def unread_count(session: AsyncSession, user_id: uuid.UUID) -> int:
    return await repository.unread_count(session, user_id)


async def mark_read(session: AsyncSession, *, user_id: uuid.UUID, notification_id: uuid.UUID) -> Notification:
    """Mark one of the user's notifications read (again is fine); others' are not found."""
    await repository.mark_read(session, user_id, notification_id, utcnow())
    return found_or_raise(await repository.own(session, user_id, notification_id),
                          NotificationNotFound, f"You have no notification {notification_id}.")


async def mark_all_read(session: AsyncSession, *, user_id: uuid.UUID) -> int:
    return await repository.mark_all_read(session, user_id, utcnow())
