"""Artifact storage: package archives, content-addressed by SHA-256 (the port and its two adapters).

Which adapter to use:

- :class:`LocalArtifactStore` (the default; ``MERCATO_STORAGE_URL`` unset or ``file:///path``):
  files under the data dir. For one server, or several processes on one machine or on a
  shared POSIX filesystem with atomic rename. Nothing to run besides Mercato.
- :class:`S3ArtifactStore` (``s3://bucket/prefix?endpoint_url=...&region=...``): any
  S3-compatible service (AWS S3, MinIO, Ceph RGW, Garage, R2, ...). For the scaled form:
  several machines or containers that share no disk.

:func:`open_store` picks one from the settings. Both keep the same contract, which
``tests/kit/test_storage.py`` runs against each:

- An object is named by the hex SHA-256 of its bytes; storing the same content twice
  is one object, and concurrent stores of the same content are safe.
- Everything streams: a 512 MiB archive is never held in memory (at most a few parts of
  a multipart upload are).
- A digest is 64 lowercase hex characters; anything else is refused
  (:class:`InvalidDigest`) before any path or key is built from it.
- ``open`` reads bytes ``[start, end)`` in chunks of about 256 KiB. Argument errors are
  raised when it is called; a missing object (:class:`ArtifactMissing`, 404) when the
  iteration starts. An endpoint that must answer 404 before sending headers calls
  ``size()`` first (it needs the size for ``Content-Length`` anyway).
- ``delete`` is idempotent. The store does not know which versions reference a digest:
  the caller deletes only what nothing references any more.

The package: ``port.py`` (the protocol, its errors and types), ``spool.py`` (hashing what
is stored, shared by the adapters), ``local.py`` and ``s3.py`` (one adapter each) and
``factory.py`` (the one place that chooses an adapter).
"""

from mercato.kit.storage.factory import open_store
from mercato.kit.storage.local import LocalArtifactStore
from mercato.kit.storage.port import (
    CHUNK_SIZE,
    ArtifactMissing,
    ArtifactStore,
    DigestMismatch,
    InvalidDigest,
    StoredBlob,
    check_digest,
)
from mercato.kit.storage.s3 import S3ArtifactStore, S3Credentials

__all__ = [
    "CHUNK_SIZE", "ArtifactMissing", "ArtifactStore", "DigestMismatch", "InvalidDigest", "LocalArtifactStore",
    "S3ArtifactStore", "S3Credentials", "StoredBlob", "check_digest", "open_store",
]
