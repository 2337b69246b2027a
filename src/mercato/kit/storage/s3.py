"""The S3 adapter of the artifact store: any S3-compatible service (AWS S3, MinIO, Ceph RGW,
Garage, R2, ...), for the scaled form where machines or containers share no disk.

botocore is imported only when an S3 store is used (it is heavy and slow to load).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mercato.kit.storage.port import (
    CHUNK_SIZE,
    DigestMismatch,
    StoredBlob,
    artifact_missing,
    check_digest,
    check_range,
)
from mercato.kit.storage.spool import hash_file, spool


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
        blob = await asyncio.to_thread(hash_file, Path(path))
        if digest is not None and blob.digest != digest:
            raise DigestMismatch(f"The file's SHA-256 is {blob.digest}, not {digest}.")
        await self._upload(Path(path), blob)
        return blob

    async def put(self, chunks: AsyncIterable[bytes], *, max_bytes: int) -> StoredBlob:
        temp, blob = await spool(chunks, directory=self._spool_dir, max_bytes=max_bytes)
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
        check_range(start, end)
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
                raise artifact_missing(digest)
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
                raise artifact_missing(digest) from None
            if code == "InvalidRange":  # start at or past the end: empty, if the object exists
                if await self._head(key) is None:
                    raise artifact_missing(digest) from None
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
