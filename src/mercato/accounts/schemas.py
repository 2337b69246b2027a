from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from mercato.kit.schemas import Email, ReadModel, WriteModel

# The policy (12–256 characters, not a common password) is checked by the service so its
# refusal carries the code weak_password; the schema only bounds the body.
Password = Field(min_length=1, max_length=1024, description=(
    "12–256 characters, not a common password; long phrases welcome. Refused with 422 weak_password."))


class RegisterRequest(WriteModel):
    email: Email
    password: str = Password
    display_name: str = Field(default="", max_length=100)


class LoginRequest(WriteModel):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class RefreshRequest(WriteModel):
    refresh_token: str = Field(min_length=1, max_length=512)


class LogoutRequest(WriteModel):
    refresh_token: str | None = Field(default=None, max_length=512)


class TokenResponse(ReadModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


class UserRead(ReadModel):
    id: uuid.UUID
    email: str
    display_name: str
    is_active: bool
    roles: list[str]
    created_at: datetime
    last_login_at: datetime | None


class MeUpdate(WriteModel):
    display_name: str | None = Field(default=None, max_length=100)
    email: Email | None = None
    current_password: str | None = Field(default=None, max_length=1024,
                                         description="Required to change the email (re-authentication).")


class PasswordChange(WriteModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Password


class ApiTokenCreate(WriteModel):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[str] = Field(default_factory=list, max_length=50, description=(
        "Permissions the token carries, each `permission` or `permission@resource` "
        "(e.g. `version:upload@hello-notes`). Empty: every permission you hold."))
    expires_in_days: int | None = Field(default=90, ge=1, le=3650, description="Null for no expiry.")


class ApiTokenRead(ReadModel):
    id: uuid.UUID
    name: str
    hint: str = Field(description="The first characters of the token.")
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


class ApiTokenCreated(ApiTokenRead):
    token: str = Field(description="Shown once; only its hash is stored.")


class AdminUserCreate(WriteModel):
    email: Email
    password: str = Password
    display_name: str = Field(default="", max_length=100)
    roles: list[str] = Field(default_factory=lambda: ["user"], max_length=20)


class AdminUserUpdate(WriteModel):
    display_name: str | None = Field(default=None, max_length=100)
    is_active: bool | None = None
    roles: list[str] | None = Field(default=None, max_length=20)
