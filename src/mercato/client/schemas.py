"""What the store answers, as typed models; unknown fields are kept so a newer server never
breaks an older client."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    """Responses: unknown fields are kept (``extra``), so a newer server never breaks an older client."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class TokenPair(_Model):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int | None = None


class CreatedToken(_Model):
    id: str
    name: str
    token: str
    hint: str | None = None
    scopes: list[str] = Field(default_factory=list)
    created_at: datetime | None = None
    expires_at: datetime | None = None


class User(_Model):
    id: str
    email: str
    display_name: str = ""
    roles: list[str] = Field(default_factory=list)


class PublisherRef(_Model):
    id: str | None = None
    slug: str
    name: str = ""
    verified: bool = False


class VersionRef(_Model):
    version: str


class Listing(_Model):
    id: str
    slug: str
    name: str = ""
    kind: str = ""
    status: str = ""
    publisher: PublisherRef | None = None
    summary: str = ""
    latest_version: VersionRef | None = None


class Finding(_Model):
    severity: str = ""
    code: str = ""
    message: str = ""
    path: str | None = None


class Checks(_Model):
    risk_score: float | int | None = None
    findings: list[Finding] = Field(default_factory=list)


class Version(_Model):
    id: str
    listing_id: str | None = None
    version: str
    status: str
    sha256: str | None = None
    size: int | None = None
    created_at: datetime | None = None
    submitted_at: datetime | None = None
    decided_at: datetime | None = None
    decision_reason: str | None = None
    yank_reason: str | None = None
    checks: Checks | None = None
    manifest: dict[str, Any] | None = None


class PublicKey(_Model):
    id: str
    algorithm: str = "ed25519"
    public_key: str


@dataclass(frozen=True)
class DownloadResult:
    """A downloaded artifact. ``sha256`` was computed while writing and equals the store's header."""

    path: Path
    sha256: str
    size: int
    signature: str | None
    key_id: str | None
    etag: str | None = None
