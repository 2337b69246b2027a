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
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from mercato.kit.errors import BadRequest, MercatoError, NotFound, PayloadTooLarge

if TYPE_CHECKING:
    from mercato.config import Settings

CHUNK_SIZE = 256 * 1024
"""Size of the chunks ``open`` yields."""
_IO_SIZE = 1024 * 1024  # reads while hashing, and writes of a spooled stream, batch this much
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


def _check_range(start: int, end: int | None) -> None:
    if start < 0 or (end is not None and end < start):
        raise ValueError(f"invalid byte range [{start}, {end})")


def _missing(digest: str) -> ArtifactMissing:
    return ArtifactMissing(f"The store holds no artifact with digest {digest}.")


def _hash_file(path: Path) -> StoredBlob:
    hasher = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(_IO_SIZE):
            hasher.update(block)
            size += len(block)
    return StoredBlob(hasher.hexdigest(), size)


def _write_blocks(handle: BinaryIO, hasher: Any, blocks: list[bytes]) -> None:
    for block in blocks:
        hasher.update(block)
        handle.write(block)


def _finish(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())


async def _spool(chunks: AsyncIterable[bytes], *, directory: Path | None, max_bytes: int) -> tuple[Path, StoredBlob]:
    """Write a stream to a new temp file, hashing it on the way; at most ~1 MiB is held at once."""
    if directory is not None:
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=directory, prefix="put-")
    path = Path(name)
    hasher = hashlib.sha256()
    size = 0
    pending: list[bytes] = []
    pending_size = 0
    try:
        with os.fdopen(fd, "wb") as handle:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(f"The content is larger than the limit of {max_bytes} bytes.")
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size >= _IO_SIZE:
                    await asyncio.to_thread(_write_blocks, handle, hasher, pending)
                    pending, pending_size = [], 0
            if pending:
                await asyncio.to_thread(_write_blocks, handle, hasher, pending)
            await asyncio.to_thread(_finish, handle)
    except BaseException:
        path.unlink(missing_ok=True)  # noqa: ASYNC240 - synchronous on purpose: also runs when cancelled
        raise
    return path, StoredBlob(hasher.hexdigest(), size)


# --- local files -------------------------------------------------------------------------

class LocalArtifactStore:
    """Files at ``root/ab/cd/<digest>``; writes go to ``root/.tmp`` first, then ``os.replace``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._tmp = self.root / ".tmp"

    def path_of(self, digest: str) -> Path:
        check_digest(digest)
        return self.root / digest[:2] / digest[2:4] / digest

    async def put_file(self, path: Path, *, digest: str | None = None) -> StoredBlob:
        if digest is not None:
            check_digest(digest)
        return await asyncio.to_thread(self._put_file, Path(path), digest)

    async def put(self, chunks: AsyncIterable[bytes], *, max_bytes: int) -> StoredBlob:
        temp, blob = await _spool(chunks, directory=self._tmp, max_bytes=max_bytes)
        try:
            await asyncio.to_thread(self._install, temp, blob)
        finally:
            temp.unlink(missing_ok=True)
        return blob

    async def exists(self, digest: str) -> bool:
        return await self.size(digest) is not None

    async def size(self, digest: str) -> int | None:
        path = self.path_of(digest)
        try:
            return (await asyncio.to_thread(path.stat)).st_size
        except FileNotFoundError:
            return None

    def open(self, digest: str, *, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        path = self.path_of(digest)
        _check_range(start, end)
        return self._read(path, digest, start, end)

    async def delete(self, digest: str) -> None:
        await asyncio.to_thread(self.path_of(digest).unlink, missing_ok=True)

    async def close(self) -> None:
        return None

    # -- in threads --

    def _put_file(self, source: Path, expected: str | None) -> StoredBlob:
        blob = _hash_file(source)
        if expected is not None and blob.digest != expected:
            raise DigestMismatch(f"The file's SHA-256 is {blob.digest}, not {expected}.")
        if self._holds(blob):
            return blob
        self._tmp.mkdir(parents=True, exist_ok=True)
        temp = self._tmp / f"file-{uuid.uuid4().hex}"
        try:
            try:
                os.link(source, temp)  # same filesystem: no copy
            except OSError:
                shutil.copyfile(source, temp)
                if _hash_file(temp) != blob:
                    raise DigestMismatch(f"{source} changed while it was being stored.") from None
            self._install(temp, blob)
        finally:
            temp.unlink(missing_ok=True)
        return blob

    def _holds(self, blob: StoredBlob) -> bool:
        try:
            return self.path_of(blob.digest).stat().st_size == blob.size
        except FileNotFoundError:
            return False

    def _install(self, temp: Path, blob: StoredBlob) -> None:
        if self._holds(blob):
            return  # the same content is already there: one object
        target = self.path_of(blob.digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, target)  # atomic: readers see the whole file or none
        with contextlib.suppress(OSError):  # make the rename durable (POSIX)
            fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    async def _read(self, path: Path, digest: str, start: int, end: int | None) -> AsyncIterator[bytes]:
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise _missing(digest) from None
        try:
            if start:
                await asyncio.to_thread(handle.seek, start)
            remaining = None if end is None else end - start
            while remaining is None or remaining > 0:
                wanted = CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining)
                chunk = await asyncio.to_thread(handle.read, wanted)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            handle.close()


# --- S3 ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class S3Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def __repr__(self) -> str:  # never print the secret
        return f"S3Credentials(access_key_id={self.access_key_id!r}, secret_access_key='***')"


def _s3_error(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class S3ArtifactStore:
    """Objects at ``prefix/ab/<digest>`` in one bucket of an S3-compatible service.

    A stream is spooled to a temp file in ``spool_dir`` (default: the system temp dir),
    hashed on the way, and then uploaded under its digest. Files larger than ``part_size``
    go up as multipart uploads, ``max_concurrency`` parts at a time; an upload holds about
    ``2 * part_size * max_concurrency`` bytes (64 MiB with the defaults), whatever the
    size of the file. A failed multipart upload is aborted.
    ``credentials=None`` uses botocore's usual chain (``AWS_ACCESS_KEY_ID``, profiles,
    instance roles, ...). The bucket must exist.
    """

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 region: str | None = None, credentials: S3Credentials | None = None,
                 addressing_style: str | None = None, spool_dir: Path | None = None,
                 part_size: int = 8 * 1024 * 1024, max_concurrency: int = 4) -> None:
        if not bucket:
            raise ValueError("an S3 artifact store needs a bucket")
        if part_size < 5 * 1024 * 1024:
            raise ValueError("S3 multipart parts are at least 5 MiB")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.region = region
        self._credentials = credentials
        # S3-compatible services other than AWS mostly want path-style URLs
        self._addressing_style = addressing_style or ("path" if endpoint_url else "auto")
        self._spool_dir = spool_dir
        self._part_size = part_size
        self._max_concurrency = max(1, max_concurrency)
        self._client: Any = None
        self._stack = contextlib.AsyncExitStack()
        self._lock = asyncio.Lock()

    def key_of(self, digest: str) -> str:
        check_digest(digest)
        name = f"{digest[:2]}/{digest}"
        return f"{self.prefix}/{name}" if self.prefix else name

    async def put_file(self, path: Path, *, digest: str | None = None) -> StoredBlob:
        if digest is not None:
            check_digest(digest)
        blob = await asyncio.to_thread(_hash_file, Path(path))
        if digest is not None and blob.digest != digest:
            raise DigestMismatch(f"The file's SHA-256 is {blob.digest}, not {digest}.")
        await self._upload(Path(path), blob)
        return blob

    async def put(self, chunks: AsyncIterable[bytes], *, max_bytes: int) -> StoredBlob:
        temp, blob = await _spool(chunks, directory=self._spool_dir, max_bytes=max_bytes)
        try:
            await self._upload(temp, blob)
        finally:
            temp.unlink(missing_ok=True)
        return blob

    async def exists(self, digest: str) -> bool:
        return await self.size(digest) is not None

    async def size(self, digest: str) -> int | None:
        key = self.key_of(digest)
        return await self._head(key)

    def open(self, digest: str, *, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        key = self.key_of(digest)
        _check_range(start, end)
        return self._read(key, digest, start, end)

    async def delete(self, digest: str) -> None:
        key = self.key_of(digest)
        client = await self._s3()
        await client.delete_object(Bucket=self.bucket, Key=key)

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None

    # -- internals --

    async def _s3(self) -> Any:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    # botocore only for an S3-compatible store (heavy; start-up time)
                    from aiobotocore.config import AioConfig

                    secrets: dict[str, str | None] = {}
                    if self._credentials is not None:
                        secrets = {"aws_access_key_id": self._credentials.access_key_id,
                                   "aws_secret_access_key": self._credentials.secret_access_key,
                                   "aws_session_token": self._credentials.session_token}
                    config = AioConfig(s3={"addressing_style": self._addressing_style},
                                       retries={"mode": "standard", "max_attempts": 5},
                                       max_pool_connections=max(10, 2 * self._max_concurrency))
                    self._client = await self._stack.enter_async_context(_aio_session().create_client(
                        "s3", region_name=self.region, endpoint_url=self.endpoint_url, config=config, **secrets))
        return self._client

    async def _head(self, key: str) -> int | None:
        # botocore only for an S3-compatible store (heavy; start-up time)
        from botocore.exceptions import ClientError

        client = await self._s3()
        try:
            response = await client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _s3_error(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return int(response["ContentLength"])

    async def _upload(self, path: Path, blob: StoredBlob) -> None:
        key = self.key_of(blob.digest)
        if await self._head(key) == blob.size:
            return  # the same content is already there: one object
        client = await self._s3()
        if blob.size <= self._part_size:
            body = await asyncio.to_thread(path.read_bytes)
            await client.put_object(Bucket=self.bucket, Key=key, Body=body,
                                    ContentType="application/octet-stream")
        else:
            await self._upload_multipart(client, key, path, blob.size)

    async def _upload_multipart(self, client: Any, key: str, path: Path, size: int) -> None:
        part_size = max(self._part_size, -(-size // 10_000))  # S3 allows 10,000 parts
        created = await client.create_multipart_upload(Bucket=self.bucket, Key=key,
                                                       ContentType="application/octet-stream")
        upload_id = created["UploadId"]
        slots = asyncio.Semaphore(self._max_concurrency)

        async def upload_part(number: int, offset: int) -> dict[str, Any]:
            async with slots:
                data = await asyncio.to_thread(_read_at, path, offset, min(part_size, size - offset))
                response = await client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                    PartNumber=number, Body=data)
                return {"PartNumber": number, "ETag": response["ETag"]}

        try:
            try:
                async with asyncio.TaskGroup() as group:
                    tasks = [group.create_task(upload_part(number, offset))
                             for number, offset in enumerate(range(0, size, part_size), start=1)]
            except BaseExceptionGroup as failed:  # the caller sees the first failure itself
                raise failed.exceptions[0] from None
            await client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id,
                MultipartUpload={"Parts": [task.result() for task in tasks]})
        except BaseException:
            with contextlib.suppress(Exception):  # best effort; a bucket lifecycle rule sweeps the rest
                await asyncio.shield(client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id))
            raise

    async def _read(self, key: str, digest: str, start: int, end: int | None) -> AsyncIterator[bytes]:
        # botocore only for an S3-compatible store (heavy; start-up time)
        from botocore.exceptions import ClientError

        if end == start:  # nothing to read, but a missing artifact is still missing
            if await self._head(key) is None:
                raise _missing(digest)
            return
        client = await self._s3()
        ranged: dict[str, str] = {}
        if start or end is not None:
            ranged["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            response = await client.get_object(Bucket=self.bucket, Key=key, **ranged)
        except ClientError as exc:
            code = _s3_error(exc)
            if code in ("NoSuchKey", "404"):
                raise _missing(digest) from None
            if code == "InvalidRange":  # start at or past the end: empty, if the object exists
                if await self._head(key) is None:
                    raise _missing(digest) from None
                return
            raise
        body = response["Body"]
        async with body:  # gives the connection back (or closes it) even if the reader stops early
            pending: list[bytes] = []
            pending_size = 0
            while chunk := await body.read(CHUNK_SIZE - pending_size):
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size >= CHUNK_SIZE:
                    yield b"".join(pending)
                    pending, pending_size = [], 0
            if pending:
                yield b"".join(pending)


@functools.cache
def _aio_session() -> Any:
    """One botocore session per process: it caches the (slow to load) service models."""
    # botocore only for an S3-compatible store (heavy; start-up time)
    from aiobotocore.session import get_session

    return get_session()


def _read_at(path: Path, offset: int, length: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read(length)


# --- choosing one ------------------------------------------------------------------------

_S3_OPTIONS = {"endpoint_url", "region", "addressing_style"}


def open_store(settings: Settings) -> ArtifactStore:
    """The artifact store ``settings.storage_url`` names (default: ``data_dir/artifacts``)."""
    url = settings.storage_url
    if not url:
        return LocalArtifactStore(settings.data_dir / "artifacts")
    parts = urlsplit(url)
    if parts.scheme == "file":
        path = unquote(parts.path)
        if parts.netloc not in ("", "localhost") or not path.startswith("/"):
            raise ValueError(f"MERCATO_STORAGE_URL {url!r}: a file URL is file:///absolute/path")
        return LocalArtifactStore(Path(path))
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ValueError(f"MERCATO_STORAGE_URL {url!r}: an S3 URL is s3://bucket/prefix?endpoint_url=...")
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        unknown = sorted(set(query) - _S3_OPTIONS)
        if unknown:
            raise ValueError(f"MERCATO_STORAGE_URL: unknown option(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(_S3_OPTIONS))}")
        if query.get("addressing_style", "auto") not in ("auto", "path", "virtual"):
            raise ValueError("MERCATO_STORAGE_URL: addressing_style is auto, path or virtual")
        key_id, secret = settings.s3_access_key_id, settings.s3_secret_access_key
        if bool(key_id) != bool(secret):
            raise ValueError("Set both MERCATO_S3_ACCESS_KEY_ID and MERCATO_S3_SECRET_ACCESS_KEY, or neither "
                             "(then the standard AWS variables and profiles are used).")
        credentials = S3Credentials(key_id, secret) if key_id and secret else None
        return S3ArtifactStore(parts.netloc, unquote(parts.path), endpoint_url=query.get("endpoint_url"),
                               region=query.get("region"), credentials=credentials,
                               addressing_style=query.get("addressing_style"))
    raise ValueError(f"MERCATO_STORAGE_URL {url!r}: use file:///path or s3://bucket/prefix")
