from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field, HttpUrl

from mercato.kit.schemas import Email, ReadModel, Slug, WriteModel


class ApplicationCreate(WriteModel):
    slug: Slug
    name: str = Field(min_length=2, max_length=100)
    description: str = Field(default="", max_length=5000)
    website: HttpUrl | None = None


class ApplicationRead(ReadModel):
    id: uuid.UUID
    user_id: uuid.UUID
    slug: str
    name: str
    description: str
    website: str | None
    status: Literal["pending", "approved", "rejected"]
    reason: str | None
    publisher_id: uuid.UUID | None
    created_at: datetime
    decided_at: datetime | None


class ApplicationReject(WriteModel):
    reason: str = Field(min_length=3, max_length=2000)


class PublisherCreate(WriteModel):
    slug: Slug
    name: str = Field(min_length=2, max_length=100)
    description: str = Field(default="", max_length=5000)
    website: HttpUrl | None = None
    owner_email: Email


class PublisherUpdate(WriteModel):
    name: str | None = Field(default=None, min_length=2, max_length=100)
    description: str | None = Field(default=None, max_length=5000)
    website: HttpUrl | None = None
    verified: bool | None = Field(default=None, description="Admins only (publisher:verify).")


class MemberRead(ReadModel):
    user_id: uuid.UUID
    email: str
    role: Literal["owner", "member"]


class PublisherRead(ReadModel):
    id: uuid.UUID
    slug: str
    name: str
    description: str
    website: str | None
    verified: bool
    created_at: datetime
    members: list[MemberRead] | None = Field(default=None, description="Only for members and admins.")


class MemberAdd(WriteModel):
    email: Email
    role: Literal["owner", "member"] = "member"
