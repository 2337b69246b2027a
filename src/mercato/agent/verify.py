"""What the agent checks before anything is unpacked: checksum, signature, licence, package.

- **Checksum**: the SHA-256 of the downloaded bytes must equal the one the task names and
  the one the store sent with the download (``X-Checksum-SHA256``).
- **Signature**: the store's Ed25519 signature over that digest
  (:func:`mercato.kit.keys.artifact_message`) must verify with one of the store's public
  keys (the same check as ``mercato download``: :func:`mercato.client.verify_download`).
- **Licence**: when the task carries a licence document, it must be signed by the store
  (:func:`mercato.kit.keys.verify_document`, as ``mercato licence verify``), be for the
  listing being installed, and not be expired.
- **Package**: the archive must pass the store's own package checks
  (:func:`mercato.packages.archive.inspect_archive`: paths, links, bombs, polyglots, limits)
  and its manifest must be the listing and version the task asked for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mercato.agent.errors import (
    ChecksumMismatch,
    LicenceInvalid,
    PackageRefused,
    SignatureInvalid,
)
from mercato.client.errors import SignatureInvalid as ClientSignatureInvalid
from mercato.client.schemas import DownloadResult, PublicKey
from mercato.client.signatures import verify_download
from mercato.client.transfer import file_sha256
from mercato.kit.keys import verify_document
from mercato.packages.archive import InspectedArchive, PackageLimits, inspect_archive
from mercato.packages.errors import PackageError


def check_checksum(path: Path, *, expected: str, declared: str | None) -> str:
    """The file's SHA-256, if it is the one the task names (and the store declared)."""
    actual = file_sha256(path)
    expected = expected.strip().lower().removeprefix("sha256:")
    if actual != expected:
        raise ChecksumMismatch(f"the download's SHA-256 is {actual}, not the {expected} the task names; "
                               "it was discarded and nothing was installed")
    if declared is not None and declared.strip().lower() != actual:
        raise ChecksumMismatch(f"the store declared SHA-256 {declared} for a download whose SHA-256 is {actual}; "
                               "it was discarded and nothing was installed")
    return actual


def check_signature(path: Path, *, sha256: str, size: int, signature: str | None, key_id: str | None,
                    keys: Sequence[PublicKey]) -> PublicKey:
    """The store key whose signature over ``sha256`` verifies."""
    result = DownloadResult(path=path, sha256=sha256, size=size, signature=signature, key_id=key_id)
    try:
        return verify_download(result, list(keys))
    except ClientSignatureInvalid as error:
        raise SignatureInvalid(f"{error.message}; nothing was installed") from None


def check_licence(document: Mapping[str, Any], *, listing_id: str, keys: Sequence[PublicKey],
                  now: datetime | None = None) -> Mapping[str, Any]:
    """The licence body, if the document is the store's, for this listing, and current."""
    licence = document.get("licence") if isinstance(document, Mapping) else None
    if not isinstance(licence, Mapping):
        raise LicenceInvalid("the task's licence is not a licence document (no \"licence\" object)")
    published = [{"id": key.id, "algorithm": key.algorithm, "public_key": key.public_key} for key in keys]
    if not verify_document(document, published):
        raise LicenceInvalid(f"the licence's signature (key {document.get('key_id')}) does not verify with the "
                             "store's public keys; nothing was installed")
    if str(licence.get("listing_id")) != str(listing_id):
        raise LicenceInvalid(f"the licence is for listing {licence.get('listing_id')}, not {listing_id}")
    expires_at = licence.get("expires_at")
    if expires_at is not None:
        try:
            when = datetime.fromisoformat(str(expires_at))
        except ValueError:
            raise LicenceInvalid(f"the licence has an unreadable expiry {expires_at!r}") from None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        if when <= (now or datetime.now(UTC)):
            raise LicenceInvalid(f"the licence expired at {expires_at}")
    return licence


def check_package(path: Path, *, sha256: str, listing_slug: str | None, version: str,
                  limits: PackageLimits | None = None) -> InspectedArchive:
    """The store's package checks, and that the manifest is the listing and version asked for."""
    try:
        inspected = inspect_archive(path, limits=limits, declared_sha256=sha256)
    except PackageError as error:
        raise PackageRefused(f"{error.code}: {error.detail}") from None
    manifest = inspected.manifest
    if manifest.version != version or (listing_slug is not None and manifest.name != listing_slug):
        raise PackageRefused(f"the archive holds {manifest.name} {manifest.version}, not "
                             f"{listing_slug or manifest.name} {version}")
    return inspected
