"""``mercato package init`` and ``mercato package build``: a valid skeleton, a reproducible archive.

:func:`build_package` packs a folder and then validates the archive it wrote with
:func:`~mercato.packages.archive.inspect_archive`, the code the server runs on upload, so
what builds uploads. Archives are reproducible: ``mercato.toml`` first, then every other
path in sorted order, a fixed timestamp (1980-01-01), no owner names or ids, permissions
reduced to 0755 (folders and executables) or 0644.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Literal

from mercato.packages.archive import PackageLimits, inspect_archive
from mercato.packages.errors import ManifestMissing, PackageDirectoryExists, PackageSourceInvalid
from mercato.packages.manifest import (
    MANIFEST_NAME,
    Launch,
    Manifest,
    PackageInfo,
    parse_manifest,
    path_problem,
    render_manifest,
    validate_name,
)

SKIPPED_NAMES = frozenset({".git", "__pycache__"})
FIXED_TIME = 315532800  # 1980-01-01T00:00:00Z, the earliest time a zip can hold
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
ArchiveKind = Literal["tar.gz", "zip"]


_OPTIONAL_TABLES = """
# More you can declare (see docs/packages.md); uncomment and edit:
#
# [compatibility]
# host = ">=2.0.0, <3.0.0"
# platforms = ["linux-x64", "linux-arm64"]
#
# [requirements]
# memory_mb = 256
# disk_mb = 40
#
# [permissions]
# network = ["api.example.org:443"]
# filesystem = ["data"]
# notifications = true
#
# [dependencies]
# "another-listing" = "^1.0.0"
#
# [config.schema]
# type = "object"
# properties = { workspace = { type = "string", minLength = 1 } }
"""


def _entry_script(name: str) -> str:
    return f'#!/bin/sh\n# Start {name}. Replace this with your program.\necho "Hello from {name}!"\n'


def init_package(directory: Path, name: str, *, kind: str = "app") -> Path:
    """Write a valid package skeleton into ``directory/name`` and return that folder."""
    try:
        validate_name(name)
    except ValueError as error:
        raise PackageSourceInvalid(str(error)) from None
    if kind not in ("app", "plugin", "game"):
        raise PackageSourceInvalid(f"{kind!r} is not a package kind; use app, plugin or game.")
    target = directory / name
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise PackageDirectoryExists(f"{target} already exists and is not an empty folder. Pick another name or "
                                     "folder, or remove it first.")
    entry = f"bin/{name}"
    manifest = Manifest(
        package=PackageInfo(name=name, version="0.1.0", kind=kind, summary=f"{name}: describe it in one line.",
                            license="proprietary", changelog="CHANGELOG.md"),
        launch=Launch(entry=entry),
    )
    text = render_manifest(manifest) + _OPTIONAL_TABLES
    parse_manifest(text.encode("utf-8"))  # the skeleton must always be valid
    (target / "bin").mkdir(parents=True, exist_ok=True)
    (target / MANIFEST_NAME).write_text(text, encoding="utf-8")
    (target / "README.md").write_text(
        f"# {name}\n\nDescribe what {name} does, how to configure it and how to use it.\n\n"
        "Build the package with `mercato package build .` and publish it with\n"
        f"`mercato publish dist/{name}-0.1.0.tar.gz --listing {name}`.\n", encoding="utf-8")
    (target / "CHANGELOG.md").write_text("# Changelog\n\n## 0.1.0\n\n- First version.\n", encoding="utf-8")
    script = target / entry
    script.write_text(_entry_script(name), encoding="utf-8")
    script.chmod(0o755)
    return target


def _walk(source: Path, skip: Path | None) -> Iterator[tuple[str, Path, bool]]:
    """(archive path, file, is_dir) for everything under ``source``, in sorted order."""
    def visit(folder: Path, prefix: str) -> Iterator[tuple[str, Path, bool]]:
        with os.scandir(folder) as scanned:
            entries = sorted(scanned, key=lambda e: e.name)
        for item in entries:
            path = Path(item.path)
            if item.name in SKIPPED_NAMES or (skip is not None and path.resolve() == skip):
                continue
            relative = prefix + item.name
            if item.is_symlink():
                raise PackageSourceInvalid(f"{path} is a symbolic link; packages can't hold links. Replace it with "
                                           "a copy of the file, or move it out of the package folder.")
            if (problem := path_problem(relative)) is not None:
                raise PackageSourceInvalid(f"{path} can't go into a package: {problem}. Rename it.")
            if item.is_dir(follow_symlinks=False):
                yield relative, path, True
                yield from visit(path, relative + "/")
            elif item.is_file(follow_symlinks=False):
                yield relative, path, False
            else:
                raise PackageSourceInvalid(f"{path} is not a regular file or folder (a device, socket or FIFO). "
                                           "Move it out of the package folder.")
    return visit(source, "")


def _mode(path: Path, is_dir: bool) -> int:
    return 0o755 if is_dir or path.stat().st_mode & 0o111 else 0o644


def _write_tar_gz(out: BinaryIO, items: list[tuple[str, Path, bool]]) -> None:
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6) as compressed, \
            tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT,
                         copybufsize=1024 * 1024) as tar:
        for name, path, is_dir in items:
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = FIXED_TIME, 0, 0, "", ""
            info.mode = _mode(path, is_dir)
            if is_dir:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
                continue
            info.size = path.stat().st_size
            with path.open("rb") as data:
                tar.addfile(info, data)


def _write_zip(out: BinaryIO, items: list[tuple[str, Path, bool]]) -> None:
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for name, path, is_dir in items:
            info = zipfile.ZipInfo(name + "/" if is_dir else name, date_time=FIXED_ZIP_TIME)
            info.create_system = 3
            mode = _mode(path, is_dir)
            if is_dir:
                info.external_attr = (stat.S_IFDIR | mode) << 16 | 0x10
                archive.writestr(info, b"")
                continue
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            info.file_size = path.stat().st_size
            with path.open("rb") as data, archive.open(info, "w") as target:
                while chunk := data.read(1024 * 1024):
                    target.write(chunk)


def build_package(source: Path, *, output_dir: Path | None = None, fmt: ArchiveKind = "tar.gz",
                  limits: PackageLimits | None = None) -> Path:
    """Pack ``source`` into ``<name>-<version>.tar.gz`` (or ``.zip``) and validate it as the server would.

    ``output_dir`` defaults to ``source/dist`` (never packed itself). ``.git`` and
    ``__pycache__`` folders are left out. If the written archive is refused, it is deleted
    and the refusal (a :class:`~mercato.packages.errors.PackageError`) is raised.
    """
    if fmt not in ("tar.gz", "zip"):
        raise PackageSourceInvalid(f"{fmt!r} is not an archive format; use tar.gz or zip.")
    if not source.is_dir():
        raise PackageSourceInvalid(f"{source} is not a folder. Point at the folder that holds mercato.toml.")
    manifest_path = source / MANIFEST_NAME
    if not manifest_path.is_file() or manifest_path.is_symlink():
        raise ManifestMissing(f"{source} has no mercato.toml. Write one (mercato package init NAME writes a "
                              "skeleton) or point at the package folder.")
    manifest = parse_manifest(manifest_path.read_bytes())
    output_dir = output_dir if output_dir is not None else source / "dist"
    skip = output_dir.resolve()
    items = list(_walk(source.resolve(), skip))
    items.sort(key=lambda item: (item[0] != MANIFEST_NAME, item[0]))
    output_dir.mkdir(parents=True, exist_ok=True)
    final = output_dir / f"{manifest.name}-{manifest.version}.{fmt}"
    handle, temporary_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".partial", dir=output_dir)
    temporary = Path(temporary_name)
    try:
        with os.fdopen(handle, "wb") as out:
            (_write_tar_gz if fmt == "tar.gz" else _write_zip)(out, items)
        inspect_archive(temporary, limits=limits or PackageLimits())
        os.replace(temporary, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    return final
