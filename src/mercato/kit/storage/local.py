"""The local-files adapter of the artifact store: the default, for one machine or a shared
POSIX filesystem with atomic rename (nothing to run besides Mercato)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

from mercato.kit.storage.port import (
    CHUNK_SIZE,
    DigestMismatch,
    StoredBlob,
    artifact_missing,
    check_digest,
    check_range,
)
from mercato.kit.storage.spool import hash_file, spool


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
        temp, blob = await spool(chunks, directory=self._tmp, max_bytes=max_bytes)
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
        check_range(start, end)
        return self._read(path, digest, start, end)

    async def delete(self, digest: str) -> None:
        await asyncio.to_thread(self.path_of(digest).unlink, missing_ok=True)

    async def close(self) -> None:
        return None

    # -- in threads --

    def _put_file(self, source: Path, expected: str | None) -> StoredBlob:
        blob = hash_file(source)
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
                if hash_file(temp) != blob:
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
            raise artifact_missing(digest) from None
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
