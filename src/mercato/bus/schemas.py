from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from mercato.kit.schemas import ReadModel


class EventRead(ReadModel):
    """A CloudEvent 1.0 in its JSON form, as stored in the outbox. ``sequence`` is the
    CloudEvents sequence extension: a string, the store's event number (monotonic)."""

    specversion: Literal["1.0"] = "1.0"
    id: uuid.UUID
    source: str
    type: str
    subject: str
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    sequence: str = Field(pattern=r"^[0-9]+$")
    data: dict[str, Any]


class DeadLetterRead(ReadModel):
    """A delivery that failed every attempt (``state`` dead), or one just replayed (pending)."""

    id: uuid.UUID
    subscriber: str
    event_id: uuid.UUID
    event_type: str
    subject: str
    state: Literal["pending", "done", "dead"]
    attempts: int
    last_error: str | None
    failed_at: datetime = Field(description="When it last changed state: failed, or was replayed.")
