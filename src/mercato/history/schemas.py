"""Response models of the operation history."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from mercato.kit.schemas import ReadModel

HistoryKind = Literal["purchase", "refund", "payment", "library", "review", "publishing", "payout", "install"]


class HistoryEntryRead(ReadModel):
    id: uuid.UUID
    kind: HistoryKind
    action: str = Field(description="What happened: the event type, e.g. `order.completed`.")
    title: str
    subject: str = Field(description="The id of what it happened to (order, refund, review, listing, task …).")
    listing_id: uuid.UUID | None
    data: dict[str, Any] = Field(description="The event's details (amounts, versions, reasons, states).")
    occurred_at: datetime


class HistoryPage(ReadModel):
    items: list[HistoryEntryRead]
    next_cursor: str | None = None
    total: int | None = Field(default=None, description="Only with total=true.")
