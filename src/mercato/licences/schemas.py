"""Request and response models of key pools and licence documents."""

from __future__ import annotations

import uuid

from pydantic import Field, field_validator

from mercato.kit.schemas import ReadModel, WriteModel

MAX_KEYS_PER_UPLOAD = 1000
MAX_KEY_LENGTH = 500


class KeyUpload(WriteModel):
    keys: list[str] = Field(min_length=1, max_length=MAX_KEYS_PER_UPLOAD, description=(
        f"1 to {MAX_KEYS_PER_UPLOAD} keys, each 1 to {MAX_KEY_LENGTH} printable characters (surrounding "
        "whitespace is removed). Keys the listing already has, and repeats within the upload, are skipped."))

    @field_validator("keys")
    @classmethod
    def _printable(cls, keys: list[str]) -> list[str]:
        cleaned = []
        for position, raw in enumerate(keys):
            key = raw.strip()
            # The position, never the key: keys are secrets and error bodies get logged.
            if not key:
                raise ValueError(f"key {position} is blank")
            if len(key) > MAX_KEY_LENGTH:
                raise ValueError(f"key {position} is longer than {MAX_KEY_LENGTH} characters")
            if not key.isprintable():
                raise ValueError(f"key {position} contains a control character (a newline, a tab, …)")
            cleaned.append(key)
        return cleaned


class KeyUploadResult(ReadModel):
    added: int = Field(description="Keys new to the pool.")
    skipped: int = Field(description="Keys the pool already had, or repeated within this upload.")
    free: int = Field(description="Keys in the pool not handed out yet, after this upload.")
    assigned: int = Field(description="Keys handed out to buyers.")


class KeyPoolRead(ReadModel):
    """Counts only: the API never returns the keys themselves."""

    listing_id: uuid.UUID
    total: int
    free: int
    assigned: int


class LicenceBody(ReadModel):
    """The signed part of a licence. Every field is a string or null, so the JSON the API
    sends is byte for byte what was signed once re-serialised canonically."""

    id: str = Field(description="The entitlement's id.")
    listing_id: str
    listing_slug: str
    user_id: str
    order_id: str | None = Field(description="The order that bought it; null for free and admin grants.")
    issued_at: str = Field(description="When the entitlement was granted (RFC 3339, UTC).")
    expires_at: str | None = Field(description="Always null: licences do not expire.")
    key: str | None = Field(description="The licence key handed out with the purchase, if the listing has a key pool.")


class LicenceDocument(ReadModel):
    licence: LicenceBody
    key_id: str = Field(description="The id of the store key that signed it (see `GET /keys`).")
    algorithm: str = Field(description="`ed25519`.")
    signature: str = Field(description=(
        "Standard base64 of the Ed25519 signature of `mercato-document-v1:` followed by the canonical JSON "
        "(sorted keys, no spaces, UTF-8) of this document without `signature`."))
