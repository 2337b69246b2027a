"""Versions as the API shows them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import Field

from mercato.kit.schemas import ReadModel, WriteModel

# A version in a path (``/listings/{id}/versions/{version}``).
VersionText = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[0-9A-Za-z.+-]+$",
                                  description="A SemVer version, e.g. 1.4.0.")]
VersionStatus = Literal["uploaded", "in_review", "approved", "rejected", "changes_requested", "yanked"]


class Finding(ReadModel):
    severity: Literal["info", "warning", "error"]
    code: str
    message: str
    path: str | None = None


class Checks(ReadModel):
    risk_score: int = Field(description="0 (harmless) to 100, from requested permissions, size and findings.")
    findings: list[Finding]


class VersionRead(ReadModel):
    id: uuid.UUID
    listing_id: uuid.UUID
    version: str
    status: VersionStatus
    sha256: str
    size: int
    unpacked_size: int
    archive_format: str
    file_count: int
    platforms: list[str]
    host_range: str | None
    changelog: str | None
    manifest: dict[str, Any]
    checks: Checks
    signature: str | None = Field(description="Ed25519 signature of the artifact digest, once approved.")
    signature_key_id: str | None
    created_at: datetime
    submitted_at: datetime | None
    decided_at: datetime | None
    decision_reason: str | None
    yanked_at: datetime | None
    yank_reason: str | None
    download_count: int


class SubmitBody(WriteModel):
    security_update: bool = Field(default=False, description="Fixes a security problem: reviewed first.")
    note: str = Field(default="", max_length=2000, description="A note for the reviewer.")


class YankBody(WriteModel):
    reason: str = Field(min_length=3, max_length=2000)


class PublicKeyRead(ReadModel):
    id: str
    algorithm: Literal["ed25519"]
    public_key: str = Field(description="Base64 of the raw 32-byte public key.")


class KeysRead(ReadModel):
    keys: list[PublicKeyRead]
    artifact_message: str = Field(description=(
        "What a download's X-Signature-Ed25519 signs: this prefix followed by the hex SHA-256 of the file."))
