"""From a package file on disk to an inspected, checked and stored archive.

Shared by the upload endpoint and the demo loader. It runs outside any database
transaction: inspection reads the whole archive, and on SQLite a write transaction held
that long would block every other writer.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import anyio
from starlette.datastructures import UploadFile

from mercato.packages.archive import PackageLimits, inspect_archive
from mercato.packages.checks import run_checks
from mercato.packages.errors import PackageTooLarge


async def ingest(runtime: Any, path: Path, *, declared_sha256: str | None = None) -> tuple[Any, Any]:
    """Inspect (in a thread), check and store ``path``; returns (InspectedArchive, CheckReport)."""
    limits = PackageLimits.from_settings(runtime.settings)
    archive = await anyio.to_thread.run_sync(
        lambda: inspect_archive(path, limits=limits, declared_sha256=declared_sha256))
    report = run_checks(archive)
    await runtime.artifacts.put_file(path, digest=archive.sha256)
    return archive, report


SPOOL_CHUNK = 1024 * 1024


def spool(upload: UploadFile, directory: Path, max_bytes: int) -> Path:
    """Copy the uploaded part to a file of our own (the multipart spool has no name); refuses
    (PackageTooLarge, nothing left behind) beyond ``max_bytes``. Blocking: run it in a thread."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"upload-{uuid.uuid4().hex}"
    written = 0
    upload.file.seek(0)
    with open(target, "wb") as out:
        while block := upload.file.read(SPOOL_CHUNK):
            written += len(block)
            if written > max_bytes:
                out.close()
                target.unlink(missing_ok=True)
                raise PackageTooLarge(f"Packages may be at most {max_bytes} bytes.")
            out.write(block)
    return target
