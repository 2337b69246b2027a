"""Base classes for request and response models."""

from __future__ import annotations

import re
from datetime import datetime
from types import UnionType
from typing import Annotated, Any, Generic, TypeVar, Union, get_args, get_origin

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

    @model_validator(mode="before")
    @classmethod
    def _strict_scalars(cls, data: Any) -> Any:
        """JSON types are kept: a boolean field takes only ``true``/``false`` (not ``"yes"``,
        ``1`` or ``"true"``), an integer field no boolean (``false`` is not 0) and no text."""
        if isinstance(data, dict):
            for key, kind in _scalar_fields(cls).items():
                if key not in data or data[key] is None:
                    continue
                value = data[key]
                if kind is bool and not isinstance(value, bool):
                    raise ValueError(f"{key} must be true or false (a JSON boolean), not {type(value).__name__}")
                if kind is int and (isinstance(value, bool) or not isinstance(value, int | float)):
                    raise ValueError(f"{key} must be a JSON number, not {type(value).__name__}")
        return data


_SCALAR_FIELDS: dict[type, dict[str, type]] = {}


def _scalar_fields(model: type[BaseModel]) -> dict[str, type]:
    """The model's fields typed ``bool`` or ``int`` (optionally ``| None``), by JSON key."""
    found = _SCALAR_FIELDS.get(model)
    if found is None:
        found = {}
        for name, info in model.model_fields.items():
            annotation = info.annotation
            options = set(get_args(annotation)) - {type(None)} if get_origin(annotation) in (Union, UnionType) \
                else {annotation}
            if options in ({bool}, {int}):
                found[info.alias or name] = options.pop()
        _SCALAR_FIELDS[model] = found
    return found


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
