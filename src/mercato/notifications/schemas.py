"""Response models of the notification inbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from mercato.kit.schemas import ReadModel


class NotificationRead(ReadModel):
    id: uuid.UUID
    kind: str = Field(description="The event type that caused it, e.g. `review.approved`.")
    title: str
    body: str
    link: str | None = Field(description="Where to look, as an API path.")
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None
    read: bool

    @classmethod
    def from_model(cls, notification: Any) -> NotificationRead:
        return cls(id=notification.id, kind=notification.kind, title=notification.title, body=notification.body,
                   link=notification.link, data=notification.data, created_at=notification.created_at,
                   read_at=notification.read_at, read=notification.read_at is not None)


class NotificationPage(ReadModel):
    items: list[NotificationRead]
    next_cursor: str | None = None
    unread_count: int = Field(description="Your unread notifications in all (not only on this page).")


class Marked(ReadModel):
    marked: int = Field(description="How many notifications were unread and are now read.")
