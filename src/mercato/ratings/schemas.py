"""Request and response models of ratings and reviews."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field, model_validator

from mercato.kit.schemas import ReadModel, WriteModel


class ReviewCreate(WriteModel):
    rating: int = Field(ge=1, le=5, description="1 to 5 stars.")
    title: str = Field(default="", max_length=120)
    body: str = Field(default="", max_length=10_000, description="Markdown; raw HTML is shown as text.")


class ReviewUpdate(WriteModel):
    rating: int | None = Field(default=None, ge=1, le=5)
    title: str | None = Field(default=None, max_length=120)
    body: str | None = Field(default=None, max_length=10_000)


class ReplyCreate(WriteModel):
    body: str = Field(min_length=1, max_length=5_000, description="Markdown. Posting again replaces the reply.")


class HideRequest(WriteModel):
    hidden: bool
    reason: str | None = Field(default=None, min_length=3, max_length=2_000,
                               description="Why it is hidden (required to hide); shown to the review's author.")

    @model_validator(mode="after")
    def _reason_to_hide(self) -> HideRequest:
        if self.hidden and not self.reason:
            raise ValueError("give a reason to hide a review")
        return self


class ReviewAuthor(ReadModel):
    name: str = Field(description="The author's display name, or \"A user\". Never an email address.")


class ReviewReply(ReadModel):
    body: str
    body_html: str
    replied_at: datetime


class ReviewRead(ReadModel):
    id: uuid.UUID
    listing_id: uuid.UUID
    author: ReviewAuthor
    mine: bool = Field(description="Whether you wrote it.")
    rating: int
    title: str
    body: str
    body_html: str
    hidden: bool
    hidden_reason: str | None = Field(description="Only for moderators and the author.")
    reply: ReviewReply | None = Field(description="The publisher's answer.")
    created_at: datetime
    updated_at: datetime


class ReviewPage(ReadModel):
    items: list[ReviewRead]
    next_cursor: str | None = None
