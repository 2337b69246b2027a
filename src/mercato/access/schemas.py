from __future__ import annotations

from typing import Literal

from pydantic import Field

from mercato.kit.schemas import ReadModel, WriteModel


class RoleRead(ReadModel):
    name: str
    description: str
    is_system: bool
    permissions: dict[str, Literal["any", "own", "public"]] = Field(
        description="permission -> condition (`any`, `own`: the caller's own resources, `public`: published ones)")


class RolePut(WriteModel):
    description: str | None = Field(default=None, max_length=500)
    permissions: dict[str, str] = Field(description="permission -> condition", max_length=200)


class PermissionRead(ReadModel):
    name: str
