"""The artifact store's port: the contract both adapters keep, its errors and its types.

An object is named by the hex SHA-256 of its bytes (:func:`check_digest` refuses anything
else before a path or key is built from it). ``open`` argument errors are raised when it is
called (:func:`check_range`); a missing object (:class:`ArtifactMissing`, 404) when the
iteration starts.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mercato.kit.errors import BadRequest, MercatoError, NotFound

CHUNK_SIZE = 256 * 1024
"""Size of the chunks ``open`` yields."""
_DIGEST = re.compile(r"[0-9a-f]{64}")


# --- errors ------------------------------------------------------------------------------

class ArtifactMissing(NotFound):
    code, title = "artifact_missing", "The artifact is not in the store"


class InvalidDigest(BadRequest):
    code, title = "invalid_digest", "Not a SHA-256 digest"


class DigestMismatch(MercatoError):
    status, code, title = 422, "digest_mismatch", "The content does not match its digest"


# --- the port ----------------------------------------------------------------------------

@dataclass(frozen=True)
class StoredBlob:
    digest: str  # hex SHA-256
    size: int


class ArtifactStore(Protocol):
    async def put_file(self, path: Path, *, digest: str | None = None) -> StoredBlob:
        """Store a local file (the store may hard-link it: delete it afterwards, never modify it).
        Computes the digest, and if ``digest`` is given, refuses other content (:class:`DigestMismatch`)."""
        ...

    async def put(self, chunks: AsyncIterable[bytes], *, max_bytes: int) -> StoredBlob:
        """Store a stream; past ``max_bytes`` raise :class:`PayloadTooLarge` and keep nothing."""
        ...

    async def exists(self, digest: str) -> bool: ...

    async def size(self, digest: str) -> int | None:
        """The size in bytes, or None when the store does not hold the digest."""
        ...

    def open(self, digest: str, *, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Bytes ``[start, end)`` (``end`` exclusive, None: to the end, clamped to the size)."""
        ...

    async def delete(self, digest: str) -> None: ...

    async def close(self) -> None: ...


def check_digest(digest: str) -> str:
    """``digest`` if it is a hex SHA-256 (64 lowercase hex characters); else :class:`InvalidDigest`."""
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise InvalidDigest(f"{digest!r:.80} is not a SHA-256 digest (64 lowercase hex characters).")
    return digest


def check_range(start: int, end: int | None) -> None:
    """Refuse a byte range ``[start, end)`` that no object could have (ValueError)."""
    if start < 0 or (end is not None and end < start):
        raise ValueError(f"invalid byte range [{start}, {end})")


def artifact_missing(digest: str) -> ArtifactMissing:
    """The error for a digest the store does not hold."""
    return ArtifactMissing(f"The store holds no artifact with digest {digest}.")
