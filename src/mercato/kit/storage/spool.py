"""Hashing what a store is given: a local file, or a stream spooled to a temp file.

Both adapters start every ``put`` here, so the digest is known before anything is stored
under it, and a stream of any size is held in memory only ~1 MiB at a time.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import AsyncIterable
from pathlib import Path
from typing import Any, BinaryIO

from mercato.kit.errors import PayloadTooLarge
from mercato.kit.storage.port import StoredBlob

_IO_SIZE = 1024 * 1024  # reads while hashing, and writes of a spooled stream, batch this much


def hash_file(path: Path) -> StoredBlob:
    """The SHA-256 and size of a local file, read in blocks."""
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


async def spool(chunks: AsyncIterable[bytes], *, directory: Path | None, max_bytes: int) -> tuple[Path, StoredBlob]:
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
