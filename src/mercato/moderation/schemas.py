"""The review queue as the API shows it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from mercato.kit.schemas import ReadModel, WriteModel

TaskStatus = Literal["pending", "claimed", "approved", "rejected", "changes_requested"]


class TaskListing(ReadModel):
    id: uuid.UUID
    slug: str
    name: str
    kind: str
    status: str


class TaskPublisher(ReadModel):
    id: uuid.UUID
    slug: str
    name: str
    verified: bool


class TaskVersion(ReadModel):
    id: uuid.UUID
    version: str
    status: str
    size: int
    unpacked_size: int
    file_count: int
    risk_score: int


class ReviewTaskRead(ReadModel):
    id: uuid.UUID
    status: TaskStatus
    priority: Literal["normal", "high"]
    listing: TaskListing
    publisher: TaskPublisher
    version: TaskVersion
    note: str
    claimed_by: uuid.UUID | None
    claimed_at: datetime | None
    decided_at: datetime | None
    reason: str | None
    appeal_status: Literal["none", "pending", "upheld", "denied"]
    appeal_reason: str | None
    created_at: datetime
    age_seconds: int = Field(description="Time since submission: the SLA clock.")


class ReviewTaskDetail(ReviewTaskRead):
    manifest: dict[str, Any]
    checks: dict[str, Any] = Field(description="risk_score, findings and the package's file list.")
    changelog: str | None


class ReviewTaskPage(ReadModel):
    items: list[ReviewTaskRead]
    next_cursor: str | None = None
    total: int | None = None


class ApproveBody(WriteModel):
    note: str = Field(default="", max_length=2000)


class ReasonBody(WriteModel):
    reason: str = Field(min_length=3, max_length=4000)


class AppealDecision(WriteModel):
    reason: str = Field(default="", max_length=4000)
