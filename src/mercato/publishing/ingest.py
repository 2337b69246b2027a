"""From a package file on disk to an inspected, checked and stored archive.

Shared by the upload endpoint and the demo loader. It runs outside any database
transaction: inspection reads the whole archive, and on SQLite a write transaction held
that long would block every other writer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio

from mercato.packages.archive import PackageLimits, inspect_archive
from mercato.packages.checks import run_checks


async def ingest(runtime: Any, path: Path, *, declared_sha256: str | None = None) -> tuple[Any, Any]:
    """Inspect (in a thread), check and store ``path``; returns (InspectedArchive, CheckReport)."""
    limits = PackageLimits.from_settings(runtime.settings)
    archive = await anyio.to_thread.run_sync(
        lambda: inspect_archive(path, limits=limits, declared_sha256=declared_sha256))
    report = run_checks(archive)
    await runtime.artifacts.put_file(path, digest=archive.sha256)
    return archive, report
