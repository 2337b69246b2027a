"""Base classes for request and response models."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import email_validator
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator

T = TypeVar("T")


class WriteModel(BaseModel):
    """Request bodies: unknown fields are refused (422), so typos and mass assignment fail
    loudly, and no text may contain NUL (PostgreSQL refuses it; SQLite would store it)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        if _has_nul(data):
            raise ValueError("text must not contain NUL characters")
        return data


def _has_nul(value: Any, depth: int = 0) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if depth > 32:
        return False
    if isinstance(value, dict):
        return any(_has_nul(k, depth + 1) or _has_nul(v, depth + 1) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(item, depth + 1) for item in value)
    return False


class ReadModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None
    total: int | None = Field(default=None, description="Only with total=true.")


Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{2,64}$")]


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _rfc3339_only(value: Any) -> Any:
    """Query timestamps are RFC 3339 text; a bare number (Unix time) is refused, not guessed."""
    if isinstance(value, str) and not _RFC3339.match(value):
        raise ValueError("use an RFC 3339 timestamp, e.g. 2026-01-01T00:00:00Z")
    return value


Timestamp = Annotated[datetime, BeforeValidator(_rfc3339_only)]


def _email(value: Any) -> Any:
    """One e-mail check for every request body. Like pydantic's ``EmailStr`` (same library, same
    normalisation: the domain lower-cased, the local part kept) but accepting the special-use
    ``.test`` domain the demo and tests use, since nothing here is deliverability-checked."""
    if not isinstance(value, str):
        return value
    if "\r" in value or "\n" in value:
        raise ValueError("value is not a valid email address: line breaks are not allowed")
    try:
        parts = email_validator.validate_email(value.strip(), check_deliverability=False, test_environment=True)
    except email_validator.EmailNotValidError as error:
        raise ValueError(f"value is not a valid email address: {error}") from error
    return parts.normalized


Email = Annotated[str, AfterValidator(_email), Field(max_length=320, json_schema_extra={"format": "email"})]
