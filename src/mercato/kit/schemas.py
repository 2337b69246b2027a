"""Base classes for request and response models."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

T = TypeVar("T")


class WriteModel(BaseModel):
    """Request bodies: unknown fields are refused (422), so typos and mass assignment fail loudly."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class ReadModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None
    total: int | None = Field(default=None, description="Only with total=true.")


Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{2,64}$")]
